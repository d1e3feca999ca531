use std::process::ExitCode;

fn main() -> ExitCode {
    wqtrace::cli::main()
}
