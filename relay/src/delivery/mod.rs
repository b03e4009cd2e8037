//! Outbound delivery: the scheduler ([`queue`]), one attempt of one message ([`attempt`]), the
//! SMTP client ([`client`]), destinations ([`route`]), the retry schedule ([`retry`]) and bounces
//! ([`dsn`]).

pub mod attempt;
pub mod client;
pub mod dsn;
pub mod queue;
pub mod retry;
pub mod route;
