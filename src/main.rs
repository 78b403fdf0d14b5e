//! The binary: everything is in the library's `main`, which parses, runs and translates the
//! outcome into the documented exit code.

fn main() -> std::process::ExitCode {
    mcp_key_manager::main()
}
