//! Adversarial attacks for robustness evaluation: upper bounds on robust accuracy, to hold
//! against the verified lower bounds of `mixtrain-bounds`.
//!
//! - [`Pgd`]: projected gradient descent under L_inf (Madry et al.), with a random start,
//!   projected onto the eps-ball intersected with the input domain. Also the inner maximisation
//!   of adversarial training.

mod pgd;

pub use pgd::Pgd;
