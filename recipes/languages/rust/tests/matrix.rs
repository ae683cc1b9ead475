use gridkit::matrix::Matrix;

fn m(rows: &[&[i64]]) -> Matrix {
    Matrix::from_rows(&rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>()).unwrap()
}

#[test]
fn from_rows_checks_lengths() {
    assert!(Matrix::from_rows(&[vec![1, 2], vec![3]]).is_none());
    let a = m(&[&[1, 2, 3], &[4, 5, 6]]);
    assert_eq!((a.rows, a.cols), (2, 3));
    assert_eq!(a.get(1, 2), 6);
}

#[test]
fn identity_has_ones_on_the_diagonal() {
    assert_eq!(Matrix::identity(3), m(&[&[1, 0, 0], &[0, 1, 0], &[0, 0, 1]]));
}

#[test]
fn transpose_swaps_rows_and_columns() {
    let a = m(&[&[1, 2, 3], &[4, 5, 6]]);
    assert_eq!(a.transpose(), m(&[&[1, 4], &[2, 5], &[3, 6]]));
    assert_eq!(a.transpose().transpose(), a);
}

#[test]
fn multiply_rectangular_matrices() {
    let a = m(&[&[1, 2, 3], &[4, 5, 6]]);
    let b = m(&[&[7, 8], &[9, 10], &[11, 12]]);
    assert_eq!(a.multiply(&b), Some(m(&[&[58, 64], &[139, 154]])));
    assert_eq!(a.multiply(&a), None);
}

#[test]
fn pow_computes_fibonacci_numbers() {
    let fib = m(&[&[1, 1], &[1, 0]]);
    assert_eq!(fib.pow(10).unwrap().get(0, 1), 55);
    assert_eq!(fib.pow(0), Some(Matrix::identity(2)));
    assert_eq!(fib.pow(1), Some(fib.clone()));
    assert_eq!(m(&[&[1, 2, 3]]).pow(2), None);
}

#[test]
fn determinant_of_small_matrices() {
    assert_eq!(m(&[&[5]]).determinant(), Some(5));
    assert_eq!(m(&[&[3, 8], &[4, 6]]).determinant(), Some(-14));
    assert_eq!(m(&[&[6, 1, 1], &[4, -2, 5], &[2, 8, 7]]).determinant(), Some(-306));
    assert_eq!(m(&[&[1, 2], &[3, 4], &[5, 6]]).determinant(), None);
}

#[test]
fn determinant_of_a_4x4_matrix() {
    let a = m(&[&[1, 0, 2, -1], &[3, 0, 0, 5], &[2, 1, 4, -3], &[1, 0, 5, 0]]);
    assert_eq!(a.determinant(), Some(30));
    assert_eq!(Matrix::identity(4).determinant(), Some(1));
}
