//! A fixture of the Rust profile's runner test.

/// Adds two numbers.
///
/// ```
/// assert_eq!(edge::add(2, 3), 5);
/// ```
pub fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// Subtracts b from a, wrongly: the fixture needs a failing test.
///
/// ```
/// assert_eq!(edge::sub(5, 3), 2);
/// ```
pub fn sub(a: i64, b: i64) -> i64 {
    a + b
}

/// Returns xs[i].
///
/// ```
/// assert_eq!(edge::index(&[7, 8], 1), 8);
/// ```
///
/// ```
/// assert_eq!(edge::index(&[7, 8], 0), 8);
/// ```
pub fn index(xs: &[i64], i: usize) -> i64 {
    xs[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds() {
        assert_eq!(add(2, 3), 5);
    }

    #[test]
    fn subtracts() {
        assert_eq!(sub(5, 3), 2);
    }

    #[test]
    #[ignore]
    fn ignored_for_now() {}

    #[test]
    #[should_panic]
    fn index_out_of_range_panics() {
        index(&[], 1);
    }

    #[test]
    fn größe_ünïcode() {
        assert_eq!(add(-1, 1), 0);
    }
}
