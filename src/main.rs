//! The `botora` binary: everything is in the library; this only hands the
//! command line to it.

fn main() -> std::process::ExitCode {
    botora::cli::main()
}
