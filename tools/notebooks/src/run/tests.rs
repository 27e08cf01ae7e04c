use super::*;

#[test]
fn panics_are_found_on_stderr() {
    assert!(has_panic(
        "thread 'main' panicked at src/lib.rs:3:5:\nboom\nnote: run with `RUST_BACKTRACE=1`"
    ));
    assert!(has_panic("x\nthread '<unnamed>' panicked at a.rs:1:1:\n"));
    assert!(has_panic(
        "\nthread '<unnamed>' (23246) panicked at src/lib.rs:98:14:\nindex out of bounds"
    ));
    assert!(!has_panic("warning: the thread 'main' is fine\n"));
}
