//! The `botora` binary: everything is in the library; this only hands the
//! command line to it.

/// mimalloc rather than glibc's allocator: a request allocates and frees
/// many small buffers across two worker threads, which glibc serves with
/// locks and periodic consolidation (a tenth of the server's CPU under the
/// post-list load, by `perf`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    botora::cli::main()
}
