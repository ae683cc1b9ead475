//! gridkit: integer geometry, matrices and text codecs for grid puzzles.

pub mod codec;
pub mod geometry;
pub mod matrix;
