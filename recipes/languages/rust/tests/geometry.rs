use gridkit::geometry::*;

fn p(x: i64, y: i64) -> Point {
    Point::new(x, y)
}

#[test]
fn manhattan_distance() {
    assert_eq!(manhattan(p(0, 0), p(3, 4)), 7);
    assert_eq!(manhattan(p(-2, 5), p(2, -1)), 10);
    assert_eq!(manhattan(p(1, 1), p(1, 1)), 0);
}

#[test]
fn chebyshev_distance() {
    assert_eq!(chebyshev(p(0, 0), p(3, 4)), 4);
    assert_eq!(chebyshev(p(-5, 1), p(2, 2)), 7);
}

#[test]
fn area_of_a_rectangle() {
    let rect = [p(0, 0), p(4, 0), p(4, 3), p(0, 3)];
    assert_eq!(area(&rect), 12);
    assert_eq!(twice_signed_area(&rect), 24);
}

#[test]
fn clockwise_polygons_have_negative_signed_area() {
    let rect = [p(0, 0), p(0, 3), p(4, 3), p(4, 0)];
    assert_eq!(twice_signed_area(&rect), -24);
    assert_eq!(area(&rect), 12);
}

#[test]
fn area_of_a_triangle_rounds_down() {
    assert_eq!(area(&[p(0, 0), p(3, 0), p(0, 3)]), 4);
}

#[test]
fn interior_points_by_picks_theorem() {
    assert_eq!(interior_points(&[p(0, 0), p(4, 0), p(4, 3), p(0, 3)]), 6);
    assert_eq!(interior_points(&[p(0, 0), p(2, 0), p(0, 2)]), 0);
    assert_eq!(interior_points(&[p(0, 0), p(5, 0), p(0, 5)]), 6);
}

#[test]
fn bounding_box_of_points() {
    assert_eq!(bounding_box(&[p(3, -1), p(-2, 4), p(0, 0)]), Some((p(-2, -1), p(3, 4))));
    assert_eq!(bounding_box(&[p(1, 1)]), Some((p(1, 1), p(1, 1))));
    assert_eq!(bounding_box(&[]), None);
}

#[test]
fn neighbours_inside_the_grid() {
    assert_eq!(neighbours(p(1, 1), 3, 3), vec![p(1, 0), p(2, 1), p(1, 2), p(0, 1)]);
    assert_eq!(neighbours(p(0, 0), 3, 3), vec![p(1, 0), p(0, 1)]);
    assert_eq!(neighbours(p(2, 2), 3, 3), vec![p(2, 1), p(1, 2)]);
    assert!(neighbours(p(0, 0), 1, 1).is_empty());
}
