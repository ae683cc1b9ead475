#[test]
fn aborts_the_process() {
    std::process::abort();
}
