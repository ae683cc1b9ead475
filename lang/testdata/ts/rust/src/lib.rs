//! Fixture for the tree-sitter transforms: one file, compiled with rustc.

pub const LIMIT: u32 = limit();

const fn limit() -> u32 {
    100
}

pub struct Counter {
    pub total: i64,
    pub steps: usize,
}

impl Counter {
    pub fn new() -> Self {
        Counter { total: 0, steps: 0 }
    }

    pub fn add(&mut self, v: i64) -> bool {
        self.total += v;
        self.steps += 1;
        if self.total > LIMIT as i64 {
            return false;
        }
        true
    }

    pub fn total(&self) -> i64 {
        self.total
    }
}

pub fn clamp(x: i64, lo: i64, hi: i64) -> i64 {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

pub fn bounded(v: i64, lo: i64, hi: i64) -> i64 {
    let c = clamp(v, lo, hi);
    c * 2
}

pub fn sum(xs: &[i64], from: usize, to: usize) -> i64 {
    let mut s = 0;
    for i in from..to {
        if i < xs.len() && xs[i] != 0 {
            s += xs[i];
        }
    }
    s
}

pub fn label(name: &str, v: i64) -> String {
    let prefix = name.to_uppercase();
    prefix + ": " + &v.to_string()
}

pub fn between(x: i64, lo: i64, hi: i64) -> bool {
    if x >= lo && x <= hi {
        true
    } else {
        false
    }
}

pub fn window(xs: &[u8]) -> u32 {
    let mut acc = 0u32;
    for b in &xs[1..] {
        acc = acc * 31 + *b as u32;
    }
    acc % 1000
}

pub fn evens(n: usize) -> impl Iterator<Item = usize> {
    (0..n).filter(|x| x % 2 == 0)
}

pub trait Shape {
    fn area(&self) -> f64;
    fn double(&self) -> f64 {
        let a = self.area();
        a * 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps() {
        assert_eq!(clamp(5, 0, 3), 3);
    }
}
