//! Finite-difference gradient checks for every op (filled in below).
