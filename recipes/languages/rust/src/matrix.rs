//! Small dense integer matrices.

/// A rows by cols matrix of i64, stored row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<i64>,
}

impl Matrix {
    /// Makes a matrix from its rows; None when they differ in length.
    pub fn from_rows(rows: &[Vec<i64>]) -> Option<Matrix> {
        let cols = rows.first().map_or(0, |r| r.len());
        let mut data = Vec::with_capacity(rows.len() * cols);
        for r in rows {
            if r.len() != cols {
                return None;
            }
            data.extend_from_slice(r);
        }
        Some(Matrix { rows: rows.len(), cols, data })
    }

    /// Returns the n by n identity matrix.
    pub fn identity(n: usize) -> Matrix {
        let mut data = vec![0; n * n];
        for i in 0..n {
            data[i * n + i] = 1;
        }
        Matrix { rows: n, cols: n, data }
    }

    /// Returns the element at row r, column c.
    pub fn get(&self, r: usize, c: usize) -> i64 {
        self.data[r * self.cols + c]
    }

    /// Returns the transpose.
    pub fn transpose(&self) -> Matrix {
        let mut data = Vec::with_capacity(self.data.len());
        for c in 0..self.cols {
            for r in 0..self.rows {
                data.push(self.get(r, c));
            }
        }
        Matrix { rows: self.cols, cols: self.rows, data }
    }

    /// Returns self times other; None when the shapes do not fit.
    pub fn multiply(&self, other: &Matrix) -> Option<Matrix> {
        if self.cols != other.rows {
            return None;
        }
        let mut data = vec![0; self.rows * other.cols];
        for r in 0..self.rows {
            for c in 0..other.cols {
                let mut acc = 0;
                for k in 0..self.cols {
                    acc += self.get(r, k) * other.get(k, c);
                }
                data[r * other.cols + c] = acc;
            }
        }
        Some(Matrix { rows: self.rows, cols: other.cols, data })
    }

    /// Returns self to the power e (square matrices only) by repeated
    /// squaring.
    pub fn pow(&self, mut e: u32) -> Option<Matrix> {
        if self.rows != self.cols {
            return None;
        }
        let mut result = Matrix::identity(self.rows);
        let mut base = self.clone();
        while e > 0 {
            if e & 1 == 1 {
                result = result.multiply(&base)?;
            }
            base = base.multiply(&base)?;
            e >>= 1;
        }
        Some(result)
    }

    /// Returns the determinant (square matrices only), by cofactor
    /// expansion along the first row.
    pub fn determinant(&self) -> Option<i64> {
        if self.rows != self.cols {
            return None;
        }
        let n = self.rows;
        match n {
            0 => Some(1),
            1 => Some(self.data[0]),
            2 => Some(self.get(0, 0) * self.get(1, 1) - self.get(0, 1) * self.get(1, 0)),
            _ => {
                let mut det = 0;
                for c in 0..n {
                    let minor = self.minor(0, c);
                    let sign = if c % 2 == 0 { 1 } else { -1 };
                    det += sign * self.get(0, c) * minor.determinant()?;
                }
                Some(det)
            }
        }
    }

    fn minor(&self, row: usize, col: usize) -> Matrix {
        let mut data = Vec::new();
        for r in 0..self.rows {
            for c in 0..self.cols {
                if r != row && c != col {
                    data.push(self.get(r, c));
                }
            }
        }
        Matrix { rows: self.rows - 1, cols: self.cols - 1, data }
    }
}
