//! Outbound delivery: the scheduler ([`queue`]), one attempt of one message ([`attempt`]), the
//! SMTP client ([`client`]), fair shares of the delivery slots ([`shares`]), destinations ([`route`]) and the addresses they may be
//! ([`destination`]), the retry schedule ([`retry`]) and bounces
//! ([`dsn`]).

pub mod attempt;
pub mod client;
pub mod destination;
pub mod dsn;
pub mod queue;
pub mod retry;
pub mod route;
pub mod shares;
