//! Text codecs used to store puzzle grids compactly.

/// Encodes each run of a repeated character as its count and the
/// character: "aaab" is "3a1b".
pub fn rle_encode(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let mut j = i;
        while j < chars.len() && chars[j] == chars[i] {
            j += 1;
        }
        out.push_str(&(j - i).to_string());
        out.push(chars[i]);
        i = j;
    }
    out
}

/// Decodes rle_encode's output; None for a character without a count or
/// a count without a character.
pub fn rle_decode(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut count: usize = 0;
    let mut digits = false;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            count = count * 10 + d as usize;
            digits = true;
            continue;
        }
        if !digits {
            return None;
        }
        for _ in 0..count {
            out.push(c);
        }
        count = 0;
        digits = false;
    }
    if digits {
        return None;
    }
    Some(out)
}

/// Rotates the ASCII letters of s by 13 places, keeping case.
pub fn rot13(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' => (((c as u8 - b'a') + 13) % 26 + b'a') as char,
            'A'..='Z' => (((c as u8 - b'A') + 13) % 26 + b'A') as char,
            _ => c,
        })
        .collect()
}

/// Returns the Luhn check digit that makes digits (ASCII '0'..'9') valid.
pub fn luhn_check_digit(digits: &str) -> Option<u32> {
    let mut sum = 0;
    for (i, c) in digits.chars().rev().enumerate() {
        let mut d = c.to_digit(10)?;
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    Some((10 - sum % 10) % 10)
}

/// Reports whether a number with its Luhn check digit last is valid.
pub fn luhn_valid(number: &str) -> bool {
    if number.len() < 2 {
        return false;
    }
    let (body, check) = number.split_at(number.len() - 1);
    match (luhn_check_digit(body), check.chars().next().and_then(|c| c.to_digit(10))) {
        (Some(want), Some(got)) => want == got,
        _ => false,
    }
}
