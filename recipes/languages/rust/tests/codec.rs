use gridkit::codec::*;

#[test]
fn rle_encode_runs() {
    assert_eq!(rle_encode(""), "");
    assert_eq!(rle_encode("aaab"), "3a1b");
    assert_eq!(rle_encode("..##...."), "2.2#4.");
    assert_eq!(rle_encode("zzzzzzzzzzzz"), "12z");
}

#[test]
fn rle_decode_runs() {
    assert_eq!(rle_decode("3a1b").as_deref(), Some("aaab"));
    assert_eq!(rle_decode("12z").as_deref(), Some("zzzzzzzzzzzz"));
    assert_eq!(rle_decode("").as_deref(), Some(""));
}

#[test]
fn rle_decode_rejects_malformed_input() {
    assert_eq!(rle_decode("a"), None);
    assert_eq!(rle_decode("3"), None);
    assert_eq!(rle_decode("2ab"), None);
}

#[test]
fn rle_round_trip() {
    for s in ["#..#..##", "x", "grid    puzzle"] {
        assert_eq!(rle_decode(&rle_encode(s)).as_deref(), Some(s));
    }
}

#[test]
fn rot13_rotates_letters_only() {
    assert_eq!(rot13("Hello, World!"), "Uryyb, Jbeyq!");
    assert_eq!(rot13(&rot13("Round trip 42")), "Round trip 42");
    assert_eq!(rot13("xyz"), "klm");
}

#[test]
fn luhn_check_digit_of_known_numbers() {
    assert_eq!(luhn_check_digit("7992739871"), Some(3));
    assert_eq!(luhn_check_digit("4539148803436"), Some(4));
    assert_eq!(luhn_check_digit("12a"), None);
}

#[test]
fn luhn_validates_numbers() {
    assert!(luhn_valid("79927398713"));
    assert!(luhn_valid("45391488034364"));
    assert!(!luhn_valid("79927398710"));
    assert!(!luhn_valid("7"));
    assert!(!luhn_valid("7992739871x"));
}
