use edge::{add, index, sub};

#[test]
fn adds_from_outside() {
    assert_eq!(add(1, 1), 2);
}

#[test]
fn panics_on_index() {
    assert_eq!(index(&[1, 2], 5), 0);
}

#[test]
fn subtracts_from_outside() {
    assert_eq!(sub(2, 1), 1);
}

#[test]
#[ignore = "slow"]
fn slow_one() {}

mod nested {
    #[test]
    fn in_a_module() {
        assert_eq!(edge::add(0, 0), 0);
    }
}
