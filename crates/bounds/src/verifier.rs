//! The verifier a user calls: a domain and its options in; per point a verdict, the margins'
//! lower bounds and the seconds it took out.

use std::time::Instant;

use burn::tensor::{Int, Tensor};
use mixtrain_nn::Network;
use serde::{Deserialize, Serialize};

use crate::numeric::{read_bools, read_floats};
use crate::{AlphaCrown, BoundsError, BranchAndBound, DomainKind, InputSet, Margins};

/// What the verifier concluded about one point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every margin's lower bound is positive: no point of the box changes the label.
    Verified,
    /// Some margin's lower bound is not positive: the bound decides nothing (the point may be
    /// robust or not).
    Unknown,
    /// An input of the box that the network misclassifies was found (by an attack run before
    /// the bounds, or by branch and bound, and checked by a forward pass): the point is not
    /// robust.
    Falsified,
}

impl Verdict {
    /// The verdict's name in reports (`verified`, `unknown`).
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Verified => "verified",
            Verdict::Unknown => "unknown",
            Verdict::Falsified => "falsified",
        }
    }
}

/// One point's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointVerdict {
    /// What the bounds decide.
    pub verdict: Verdict,
    /// Lower bounds of the margins `z_y - z_j`, one per class (the label's own is 0).
    pub margins: Vec<f32>,
    /// Seconds spent on the point: its batch's time shared equally among the batch's points,
    /// and its branch and bound's.
    pub seconds: f64,
    /// Subproblems branch and bound visited (0 where it did not run).
    #[serde(default)]
    pub subproblems: usize,
    /// The most ReLU splits of any of them.
    #[serde(default)]
    pub depth: usize,
    /// For a point branch and bound falsified, the input (`c*h*w` pixels, inside the box) the
    /// network's forward pass misclassifies.
    #[serde(default)]
    pub counterexample: Option<Vec<f32>>,
}

/// A verifier: a bounds domain, alpha-CROWN's settings (used by `alpha-crown` and `best`),
/// how many points are bounded at once, and whether its bounds account for float32 rounding.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verifier {
    /// The domain the margins are bounded in.
    pub domain: DomainKind,
    /// alpha-CROWN's settings, for the domains that run it.
    pub alpha: AlphaCrown,
    /// Points per bound computation.
    pub batch_size: usize,
    /// Whether every bound accounts for the engine's float32 rounding
    /// ([`InputSet::into_float_sound`]), so that a verified point is verified for the network's
    /// exact arithmetic; on by default (and when a serialised verifier lacks the field).
    #[serde(default = "on")]
    pub float_sound: bool,
    /// Complete verification: branch and bound on every point the domain leaves undecided
    /// (alpha-CROWN at its root, whatever the domain), which then ends `verified`, `falsified`
    /// or, past its time limit, `unknown`. Off by default.
    #[serde(default)]
    pub complete: Option<BranchAndBound>,
}

fn on() -> bool {
    true
}

impl Verifier {
    /// `domain` with alpha-CROWN's default settings and the batch size that is fastest for it:
    /// the symbolic domains pad every point's error symbols to the batch's largest count of
    /// unstable neurons, and alpha-CROWN optimises only a batch's undecided points, so small
    /// batches suit them (figures in `docs/performance.md`); interval and CROWN gain from large
    /// ones.
    pub fn new(domain: DomainKind) -> Self {
        let batch_size = match domain {
            DomainKind::Interval | DomainKind::Crown => 50,
            DomainKind::Symbolic
            | DomainKind::CrownSymbolic
            | DomainKind::AlphaCrown
            | DomainKind::Best => 5,
        };
        Self {
            domain,
            alpha: AlphaCrown::default(),
            batch_size,
            float_sound: true,
            complete: None,
        }
    }

    /// Lower bounds of the margins of every point of `set` (one batch, however large).
    pub fn margins(
        &self,
        net: &Network,
        set: &InputSet,
        labels: Tensor<1, Int>,
    ) -> Result<Margins, BoundsError> {
        let set = self.prepared(set);
        self.domain.margins_with(&self.alpha, net, &set, labels)
    }

    /// `set`, float sound if the verifier is.
    fn prepared(&self, set: &InputSet) -> InputSet {
        match self.float_sound && !set.float_sound {
            true => set.clone().into_float_sound(),
            false => set.clone(),
        }
    }

    /// A verdict for every point of `set` with label `labels`, bounded
    /// [`Verifier::batch_size`] points at a time.
    pub fn verify(
        &self,
        net: &Network,
        set: &InputSet,
        labels: Tensor<1, Int>,
    ) -> Result<Vec<PointVerdict>, BoundsError> {
        if self.batch_size == 0 {
            return Err(BoundsError::Input(
                "the verifier's batch size must be at least 1".into(),
            ));
        }
        let original = set;
        let set = self.prepared(set);
        let n = set.len();
        let label_of: Vec<i64> = labels
            .clone()
            .into_data()
            .convert::<i64>()
            .try_to_vec()
            .map_err(|e| BoundsError::Input(format!("reading labels back: {e:?}")))?;
        let mut verdicts = Vec::with_capacity(n);
        for start in (0..n).step_by(self.batch_size) {
            let end = (start + self.batch_size).min(n);
            let batch = set.slice(start..end);
            let clock = Instant::now();
            let labels = labels.clone().slice(start..end);
            let margins = self.domain.margins_with(&self.alpha, net, &batch, labels)?;
            let verified = read_bools(margins.verified())?;
            let lower = read_floats(margins.lower)?;
            let seconds = clock.elapsed().as_secs_f64() / (end - start) as f64;
            let classes = lower.len() / (end - start);
            verdicts.extend(verified.into_iter().zip(lower.chunks(classes)).map(
                |(verified, margins)| PointVerdict {
                    verdict: if verified {
                        Verdict::Verified
                    } else {
                        Verdict::Unknown
                    },
                    margins: margins.to_vec(),
                    seconds,
                    subproblems: 0,
                    depth: 0,
                    counterexample: None,
                },
            ));
        }
        if let Some(bab) = &self.complete {
            for (i, point) in verdicts.iter_mut().enumerate() {
                if point.verdict != Verdict::Unknown {
                    continue;
                }
                let decision = bab.decide(
                    net,
                    &original.slice(i..i + 1),
                    label_of[i],
                    &self.alpha,
                    self.float_sound,
                )?;
                point.verdict = decision.verdict;
                point.seconds += decision.seconds;
                point.subproblems = decision.subproblems;
                point.depth = decision.depth;
                point.counterexample = decision.counterexample;
            }
        }
        Ok(verdicts)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, TensorData};
    use mixtrain_nn::{Architecture, Backend, LayerSpec, zoo};

    use super::*;
    use crate::InputDomain;

    #[test]
    fn verdicts_follow_the_margins_whatever_the_batch() {
        let device = Backend::Flex.device(None).unwrap();
        let arch = Architecture {
            name: "tiny".into(),
            input: [1, 4, 4],
            classes: 3,
            layers: vec![
                LayerSpec::Flatten,
                LayerSpec::Linear {
                    name: "fc".into(),
                    in_features: 16,
                    out_features: 8,
                },
                LayerSpec::Relu,
                LayerSpec::Linear {
                    name: "out".into(),
                    in_features: 8,
                    out_features: 3,
                },
            ],
        };
        let net = Network::init(&arch, 3, &device).unwrap();
        let x = Tensor::<4>::random([7, 1, 4, 4], Distribution::Uniform(0.0, 1.0), &device);
        let labels = Tensor::<1, Int>::from_data(
            TensorData::new(vec![0i64, 1, 2, 0, 1, 2, 0], [7]),
            &device,
        );
        let set = InputSet::linf(x, 0.01, InputDomain::Unit).unwrap();
        for domain in DomainKind::ALL {
            let single = Verifier::new(domain);
            let whole = single.margins(&net, &set, labels.clone()).unwrap();
            let lower: Vec<f32> = whole.lower.into_data().try_to_vec().unwrap();
            let verifier = Verifier {
                batch_size: 3,
                ..single
            };
            let verdicts = verifier.verify(&net, &set, labels.clone()).unwrap();
            assert_eq!(verdicts.len(), 7);
            for (i, point) in verdicts.iter().enumerate() {
                let label = [0, 1, 2, 0, 1, 2, 0][i];
                let positive = (0..3)
                    .filter(|&j| j != label)
                    .all(|j| point.margins[j] > 0.0);
                let expected = if positive {
                    Verdict::Verified
                } else {
                    Verdict::Unknown
                };
                assert_eq!(point.verdict, expected, "{domain}, point {i}");
                // alpha-CROWN stops once its batch is verified: its bounds depend on the batch
                let batched = matches!(domain, DomainKind::AlphaCrown | DomainKind::Best);
                for (j, m) in point.margins.iter().enumerate().filter(|_| !batched) {
                    let whole = lower[i * 3 + j];
                    assert!(
                        (m - whole).abs() <= 1e-5 * (1.0 + whole.abs()),
                        "{domain}: {m} vs {whole}"
                    );
                }
            }
        }
        let none = Verifier {
            batch_size: 0,
            ..Verifier::new(DomainKind::Crown)
        };
        assert!(none.verify(&net, &set, labels).is_err());
    }

    #[test]
    fn float_soundness_only_lowers_the_bounds_and_by_little() {
        let device = Backend::Flex.device(None).unwrap();
        let net = Network::init(&zoo::architecture("mnist_small").unwrap(), 1, &device).unwrap();
        let x = Tensor::<4>::random([4, 1, 28, 28], Distribution::Uniform(0.0, 1.0), &device);
        let labels = net.forward(x.clone()).argmax(1).squeeze_dim::<1>(1);
        let set = InputSet::linf(x, 0.002, InputDomain::Unit).unwrap();
        // symbolic's rounding bound scales with its coefficients' products in absolute value,
        // far looser on a random network (docs/bounds.md): only its direction is checked
        for (domain, loss) in [
            (DomainKind::Interval, Some(1e-2)),
            (DomainKind::Symbolic, None),
            (DomainKind::Crown, Some(1e-2)),
        ] {
            let plain = Verifier {
                float_sound: false,
                ..Verifier::new(domain)
            };
            let sound = Verifier::new(domain);
            let plain = read_floats(plain.margins(&net, &set, labels.clone()).unwrap().lower);
            let sound = read_floats(sound.margins(&net, &set, labels.clone()).unwrap().lower);
            for (p, s) in plain.unwrap().into_iter().zip(sound.unwrap()) {
                assert!(s <= p, "{domain}: float sound {s} above {p}");
                if let Some(loss) = loss {
                    assert!(
                        p - s <= loss * (1.0 + p.abs()),
                        "{domain}: {s} far below {p}"
                    );
                }
            }
        }
    }
}
