//! The domains by name: the one table that the command line, configs, the trainer and the
//! memory estimate ([`footprint`](crate::footprint)) read.

use burn::tensor::{Int, Tensor};
use mixtrain_nn::Network;
use serde::{Deserialize, Serialize};

use crate::{
    AlphaCrown, BoundsError, Domain, InputSet, Interval, Margins, Symbolic, best, crown, margins,
};

/// The domains by name, for configs and the command line (`interval`, `symbolic`, `crown`,
/// `crown-symbolic`, `alpha-crown`, `best`); serde and [`FromStr`](std::str::FromStr) read the same names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DomainKind {
    /// [`Interval`]: interval bound propagation (IBP).
    Interval,
    /// [`Symbolic`]: MixTrain's symbolic interval with symbolic linear relaxation; the default.
    #[default]
    Symbolic,
    /// CROWN with interval intermediate bounds: CROWN-IBP's bound.
    Crown,
    /// CROWN with symbolic-interval intermediate bounds.
    CrownSymbolic,
    /// [`AlphaCrown`] with its default settings: CROWN with optimised ReLU slopes.
    AlphaCrown,
    /// The intersection of the others (see [`crate::best_margins`]).
    Best,
}

impl DomainKind {
    /// Every domain, in the order the CLI, benches and tests list them.
    pub const ALL: [DomainKind; 6] = [
        DomainKind::Interval,
        DomainKind::Symbolic,
        DomainKind::Crown,
        DomainKind::CrownSymbolic,
        DomainKind::AlphaCrown,
        DomainKind::Best,
    ];

    /// The name in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DomainKind::Interval => Interval::NAME,
            DomainKind::Symbolic => Symbolic::NAME,
            DomainKind::Crown => "crown",
            DomainKind::CrownSymbolic => "crown-symbolic",
            DomainKind::AlphaCrown => "alpha-crown",
            DomainKind::Best => "best",
        }
    }

    /// [`margins`] in this domain, alpha-CROWN (in `alpha-crown` and `best`) with its default
    /// settings.
    pub fn margins(
        self,
        net: &Network,
        set: &InputSet,
        labels: Tensor<1, Int>,
    ) -> Result<Margins, BoundsError> {
        self.margins_with(&AlphaCrown::default(), net, set, labels)
    }

    /// [`margins`] in this domain, alpha-CROWN (in `alpha-crown` and `best`) with the settings
    /// `alpha`.
    pub fn margins_with(
        self,
        alpha: &AlphaCrown,
        net: &Network,
        set: &InputSet,
        labels: Tensor<1, Int>,
    ) -> Result<Margins, BoundsError> {
        match self {
            DomainKind::Interval => margins::<Interval>(net, set, labels),
            DomainKind::Symbolic => margins::<Symbolic>(net, set, labels),
            DomainKind::Crown => crown::margins::<Interval>(net, set, labels),
            DomainKind::CrownSymbolic => crown::margins::<Symbolic>(net, set, labels),
            DomainKind::AlphaCrown => alpha.margins(net, set, labels),
            DomainKind::Best => best::best_margins(alpha, net, set, labels),
        }
    }

    /// The tensor families one bounding pass of this domain holds, for the memory estimate:
    /// one entry per forward domain run and per CROWN backward pass.
    pub(crate) fn families(self) -> &'static [Family] {
        match self {
            DomainKind::Interval => &[Family::Interval],
            DomainKind::Symbolic => &[Family::Symbolic],
            DomainKind::Crown => &[Family::Interval, Family::Crown],
            DomainKind::CrownSymbolic => &[Family::Symbolic, Family::Crown],
            DomainKind::AlphaCrown => &[
                Family::Interval,
                Family::Symbolic,
                Family::Crown,
                Family::Alpha,
            ],
            DomainKind::Best => &[
                Family::Interval,
                Family::Symbolic,
                Family::Crown,
                Family::Crown,
                Family::Crown,
                Family::Alpha,
            ],
        }
    }
}

/// The tensors one bounding pass holds per layer, by the kind of pass: what
/// [`DomainKind::families`] lists for each domain, and what [`footprint`](crate::footprint)
/// sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    /// Interval vectors: centre, radius and the bounds, `4 x features`.
    Interval,
    /// Symbolic coefficients, `symbols x features`.
    Symbolic,
    /// CROWN's backward rows, `classes x features`.
    Crown,
    /// alpha-CROWN's rows (the margins' and the optimised intermediate bounds'), kept for the
    /// gradient of the slopes.
    Alpha,
}

impl std::fmt::Display for DomainKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DomainKind {
    type Err = BoundsError;

    fn from_str(s: &str) -> Result<Self, BoundsError> {
        by_name(s, &DomainKind::ALL, DomainKind::name, "domain")
    }
}

/// The choice among `all` whose `name` is `s`, for configs and the command line; an unknown
/// name is an error listing the choices (`what` names the setting).
pub(crate) fn by_name<T: Copy>(
    s: &str,
    all: &[T],
    name: fn(T) -> &'static str,
    what: &str,
) -> Result<T, BoundsError> {
    all.iter().copied().find(|&t| name(t) == s).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|&t| name(t)).collect();
        BoundsError::Input(format!(
            "unknown {what} {s:?}: expected one of {}",
            names.join(", ")
        ))
    })
}
