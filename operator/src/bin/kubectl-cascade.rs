//! `kubectl-cascade`: the kubectl plugin (`kubectl cascade …`); see [`cascade_operator::plugin`].
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    cascade_operator::plugin::main()
}
