//! This package only holds black-box tests; see `tests/`.
