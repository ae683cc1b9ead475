//! Points on an integer grid and measures of shapes made of them.

/// A point on the integer grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Point {
    pub x: i64,
    pub y: i64,
}

impl Point {
    /// Makes a point.
    pub fn new(x: i64, y: i64) -> Point {
        Point { x, y }
    }
}

/// Returns the Manhattan (taxicab) distance between a and b.
pub fn manhattan(a: Point, b: Point) -> i64 {
    (a.x - b.x).abs() + (a.y - b.y).abs()
}

/// Returns the Chebyshev (king's move) distance between a and b.
pub fn chebyshev(a: Point, b: Point) -> i64 {
    let dx = (a.x - b.x).abs();
    let dy = (a.y - b.y).abs();
    if dx > dy {
        dx
    } else {
        dy
    }
}

/// Returns twice the signed area of the polygon (shoelace formula):
/// positive when the vertices go counter-clockwise.
pub fn twice_signed_area(poly: &[Point]) -> i64 {
    let n = poly.len();
    let mut acc = 0;
    for i in 0..n {
        let a = poly[i];
        let b = poly[(i + 1) % n];
        acc += a.x * b.y - b.x * a.y;
    }
    acc
}

/// Returns the area of the polygon, rounded down to a whole number.
pub fn area(poly: &[Point]) -> i64 {
    twice_signed_area(poly).abs() / 2
}

/// Returns the number of grid points strictly inside the polygon, by
/// Pick's theorem (its vertices must lie on the grid).
pub fn interior_points(poly: &[Point]) -> i64 {
    let twice = twice_signed_area(poly).abs();
    let mut boundary = 0;
    for i in 0..poly.len() {
        let a = poly[i];
        let b = poly[(i + 1) % poly.len()];
        boundary += gcd((a.x - b.x).abs(), (a.y - b.y).abs());
    }
    (twice - boundary + 2) / 2
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// Returns the smallest rectangle holding every point, as its lower-left
/// and upper-right corners; None for no points.
pub fn bounding_box(points: &[Point]) -> Option<(Point, Point)> {
    let first = *points.first()?;
    let mut lo = first;
    let mut hi = first;
    for p in &points[1..] {
        lo.x = lo.x.min(p.x);
        lo.y = lo.y.min(p.y);
        hi.x = hi.x.max(p.x);
        hi.y = hi.y.max(p.y);
    }
    Some((lo, hi))
}

/// Returns the four orthogonal neighbours of p that lie inside a grid of
/// width by height cells (x in 0..width, y in 0..height).
pub fn neighbours(p: Point, width: i64, height: i64) -> Vec<Point> {
    let mut out = Vec::new();
    for (dx, dy) in [(0, -1), (1, 0), (0, 1), (-1, 0)] {
        let q = Point::new(p.x + dx, p.y + dy);
        if q.x >= 0 && q.x < width && q.y >= 0 && q.y < height {
            out.push(q);
        }
    }
    out
}
