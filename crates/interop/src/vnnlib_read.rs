//! VNN-LIB in: the properties of the VNN-COMP benchmarks, as boxes of inputs and the output
//! constraints a counterexample must meet.
//!
//! The grammar is the subset of SMT-LIB the benchmarks use: `(declare-const X_i Real)` and
//! `(declare-const Y_j Real)`, then `(assert ...)` of comparisons (`<=`, `>=`, `<`, `>`) between
//! linear expressions (`+`, `-`, `*` by a constant, numbers) nested in `and` and `or`. The
//! asserts together say what a counterexample is: an input `X` and its output `Y` that meet them
//! all. Every assert is brought to a disjunction of conjunctions; the product of those is split
//! into [`Region`]s: one box of inputs (the single-variable bounds on `X`) with the disjunction
//! of output constraints that holds there. A property is `unsat` (verified) when no region has
//! an input whose output meets one of its disjuncts. Strict comparisons are read as non-strict:
//! proving that no output meets `a <= b` proves it of `a < b` too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mixtrain_nn::{Device, LayerSpec, Network, NnError};

use crate::file::read_maybe_gz;

/// Why a VNN-LIB file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VnnlibError {
    /// The file could not be read or decompressed.
    #[error("{path}: {source}")]
    Io {
        /// The property file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a property of the supported grammar.
    #[error("{path}:{line}: {message}")]
    Syntax {
        /// The property file.
        path: PathBuf,
        /// The line (from 1) of the offending expression.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// A constraint on the outputs: `sum coeff * Y_j <= bound`.
#[derive(Clone, Debug, PartialEq)]
pub struct Constraint {
    /// `(j, coefficient)` pairs, sorted by `j`, no zero coefficient.
    pub terms: Vec<(usize, f64)>,
    /// The right-hand side.
    pub bound: f64,
}

/// A box of inputs and the output constraints a counterexample meets there: one of
/// `disjuncts`, each a conjunction.
#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    /// Lower bound of every `X_i`.
    pub lower: Vec<f64>,
    /// Upper bound of every `X_i`.
    pub upper: Vec<f64>,
    /// The counterexample condition on the outputs: any of these conjunctions.
    pub disjuncts: Vec<Vec<Constraint>>,
}

/// A VNN-LIB property.
#[derive(Clone, Debug, PartialEq)]
pub struct Property {
    /// Number of inputs `X_0 ..`.
    pub inputs: usize,
    /// Number of outputs `Y_0 ..`.
    pub outputs: usize,
    /// The regions; a counterexample lies in one of them.
    pub regions: Vec<Region>,
}

/// A comparison `sum coeff * var <= bound` over inputs or outputs, before they are told apart.
#[derive(Clone, Debug)]
struct Atom {
    terms: Vec<(Var, f64)>,
    bound: f64,
    line: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Var {
    X(usize),
    Y(usize),
}

/// A disjunction of conjunctions of atoms.
type Dnf = Vec<Vec<Atom>>;

/// Disjuncts a property may have once its asserts are multiplied out.
const MAX_DISJUNCTS: usize = 100_000;

/// An s-expression with the line it starts on.
#[derive(Debug)]
enum Sexp {
    Atom(String, usize),
    List(Vec<Sexp>, usize),
}

impl Sexp {
    fn line(&self) -> usize {
        match self {
            Sexp::Atom(_, l) | Sexp::List(_, l) => *l,
        }
    }
}

/// Reads a VNN-LIB property, plain or gzipped.
pub fn read_vnnlib(path: &Path) -> Result<Property, VnnlibError> {
    let io = |source| VnnlibError::Io {
        path: path.into(),
        source,
    };
    let bytes = read_maybe_gz(path).map_err(io)?;
    let text = String::from_utf8(bytes)
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    parse_vnnlib(&text, path)
}

/// Parses the text of a VNN-LIB property; `path` names it in errors.
pub fn parse_vnnlib(text: &str, path: &Path) -> Result<Property, VnnlibError> {
    let err = |line: usize, message: String| VnnlibError::Syntax {
        path: path.into(),
        line,
        message,
    };
    let forms = sexps(text).map_err(|(line, m)| err(line, m))?;
    let mut declared: HashMap<Var, usize> = HashMap::new();
    let mut asserts: Vec<Dnf> = Vec::new();
    for form in &forms {
        let line = form.line();
        let Sexp::List(items, _) = form else {
            return Err(err(
                line,
                "a top-level atom; expected (declare-const ...) or (assert ...)".into(),
            ));
        };
        match items.first() {
            Some(Sexp::Atom(head, _)) if head == "declare-const" => match &items[..] {
                [_, Sexp::Atom(name, _), Sexp::Atom(sort, _)] if sort == "Real" => {
                    let var = variable(name)
                        .ok_or_else(|| err(line, format!("{name}: variables are X_i and Y_j")))?;
                    if declared.insert(var, line).is_some() {
                        return Err(err(line, format!("{name} is declared twice")));
                    }
                }
                _ => return Err(err(line, "expected (declare-const NAME Real)".into())),
            },
            Some(Sexp::Atom(head, _)) if head == "assert" => match &items[..] {
                [_, expr] => asserts.push(dnf(expr, &declared).map_err(|(l, m)| err(l, m))?),
                _ => return Err(err(line, "expected (assert EXPR)".into())),
            },
            _ => {
                return Err(err(
                    line,
                    "expected (declare-const ...) or (assert ...)".into(),
                ));
            }
        }
    }
    let count = |x: bool| {
        let n = declared
            .keys()
            .filter(|v| matches!(v, Var::X(_)) == x)
            .count();
        (0..n)
            .all(|i| declared.contains_key(&if x { Var::X(i) } else { Var::Y(i) }))
            .then_some(n)
    };
    let inputs =
        count(true).ok_or_else(|| err(1, "the X_i declared are not X_0 .. X_n-1".into()))?;
    let outputs =
        count(false).ok_or_else(|| err(1, "the Y_j declared are not Y_0 .. Y_m-1".into()))?;
    if inputs == 0 || outputs == 0 {
        return Err(err(1, "no X_i or no Y_j is declared".into()));
    }
    let mut all: Dnf = vec![Vec::new()];
    for a in asserts {
        all = product(all, a).map_err(|m| err(1, m))?;
    }
    let mut regions: Vec<Region> = Vec::new();
    for conjunction in all {
        let Some((lower, upper, outputs)) =
            split(conjunction, inputs).map_err(|(l, m)| err(l, m))?
        else {
            continue;
        };
        if let Some(i) = (0..inputs).find(|&i| !(lower[i].is_finite() && upper[i].is_finite())) {
            return Err(err(1, format!("X_{i} is not bounded above and below")));
        }
        if lower.iter().zip(&upper).any(|(l, u)| l > u) {
            continue; // an empty box holds no counterexample
        }
        match regions
            .iter_mut()
            .find(|r| r.lower == lower && r.upper == upper)
        {
            Some(r) => r.disjuncts.push(outputs),
            None => regions.push(Region {
                lower,
                upper,
                disjuncts: vec![outputs],
            }),
        }
    }
    Ok(Property {
        inputs,
        outputs,
        regions,
    })
}

/// The s-expressions of `text`, `;` comments skipped.
fn sexps(text: &str) -> Result<Vec<Sexp>, (usize, String)> {
    let mut stack: Vec<(Vec<Sexp>, usize)> = vec![(Vec::new(), 1)];
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let code = line.split(';').next().unwrap_or("");
        let spaced = code.replace('(', " ( ").replace(')', " ) ");
        for token in spaced.split_whitespace() {
            match token {
                "(" => stack.push((Vec::new(), line_no)),
                ")" => {
                    let (items, start) = stack.pop().expect("the bottom is never popped");
                    let Some(parent) = stack.last_mut() else {
                        return Err((line_no, "a ) without its (".into()));
                    };
                    parent.0.push(Sexp::List(items, start));
                }
                atom => stack
                    .last_mut()
                    .expect("the bottom is never popped")
                    .0
                    .push(Sexp::Atom(atom.into(), line_no)),
            }
            if stack.is_empty() {
                return Err((line_no, "a ) without its (".into()));
            }
        }
    }
    match stack.len() {
        1 => Ok(stack.pop().expect("one level").0),
        _ => {
            let (_, start) = stack.pop().expect("more than one level");
            Err((start, "a ( that is never closed".into()))
        }
    }
}

fn variable(name: &str) -> Option<Var> {
    let (kind, index) = name.split_once('_')?;
    let i: usize = index.parse().ok()?;
    match kind {
        "X" => Some(Var::X(i)),
        "Y" => Some(Var::Y(i)),
        _ => None,
    }
}

/// A boolean expression as a disjunction of conjunctions.
fn dnf(e: &Sexp, declared: &HashMap<Var, usize>) -> Result<Dnf, (usize, String)> {
    let line = e.line();
    let Sexp::List(items, _) = e else {
        return Err((line, "expected a comparison, and or or".into()));
    };
    let Some(Sexp::Atom(head, _)) = items.first() else {
        return Err((line, "expected an operator".into()));
    };
    let args = &items[1..];
    match head.as_str() {
        "and" => {
            let mut out: Dnf = vec![Vec::new()];
            for a in args {
                out = product(out, dnf(a, declared)?).map_err(|m| (line, m))?;
            }
            Ok(out)
        }
        "or" => {
            let mut out = Dnf::new();
            for a in args {
                out.extend(dnf(a, declared)?);
            }
            Ok(out)
        }
        "<=" | "<" | ">=" | ">" => {
            let [a, b] = args else {
                return Err((line, format!("{head} takes two expressions")));
            };
            let (a, b) = (linear(a, declared)?, linear(b, declared)?);
            // a <= b, i.e. a - b <= 0
            let (lo, hi) = if head.starts_with('<') {
                (a, b)
            } else {
                (b, a)
            };
            let mut terms: HashMap<Var, f64> = HashMap::new();
            for (v, c) in lo.0 {
                *terms.entry(v).or_default() += c;
            }
            for (v, c) in hi.0 {
                *terms.entry(v).or_default() -= c;
            }
            let mut terms: Vec<(Var, f64)> = terms.into_iter().filter(|(_, c)| *c != 0.0).collect();
            terms.sort_by_key(|(v, _)| *v);
            Ok(vec![vec![Atom {
                terms,
                bound: hi.1 - lo.1,
                line,
            }]])
        }
        other => Err((
            line,
            format!("unsupported operator {other:?}; expected and, or, <=, >=, < or >"),
        )),
    }
}

/// A linear expression: `(terms, constant)`.
type Linear = (Vec<(Var, f64)>, f64);

fn linear(e: &Sexp, declared: &HashMap<Var, usize>) -> Result<Linear, (usize, String)> {
    let line = e.line();
    match e {
        Sexp::Atom(a, _) => {
            if let Ok(v) = a.parse::<f64>() {
                if !v.is_finite() {
                    return Err((line, format!("{a} is not a finite number")));
                }
                return Ok((Vec::new(), v));
            }
            match variable(a) {
                Some(v) if declared.contains_key(&v) => Ok((vec![(v, 1.0)], 0.0)),
                Some(_) => Err((line, format!("{a} is used before it is declared"))),
                None => Err((line, format!("{a}: not a number or a variable X_i / Y_j"))),
            }
        }
        Sexp::List(items, _) => {
            let Some(Sexp::Atom(op, _)) = items.first() else {
                return Err((line, "expected an operator".into()));
            };
            let args: Vec<Linear> = items[1..]
                .iter()
                .map(|a| linear(a, declared))
                .collect::<Result<_, _>>()?;
            let scale = |(t, c): Linear, k: f64| -> Linear {
                (t.into_iter().map(|(v, x)| (v, x * k)).collect(), c * k)
            };
            let sum = |parts: Vec<Linear>| -> Linear {
                parts
                    .into_iter()
                    .fold((Vec::new(), 0.0), |(mut t, c), (u, d)| {
                        t.extend(u);
                        (t, c + d)
                    })
            };
            match (op.as_str(), args.len()) {
                ("+", 1..) => Ok(sum(args)),
                ("-", 1) => Ok(scale(args.into_iter().next().expect("one"), -1.0)),
                ("-", 2..) => {
                    let mut it = args.into_iter();
                    let first = it.next().expect("two or more");
                    let rest: Vec<Linear> = it.map(|a| scale(a, -1.0)).collect();
                    Ok(sum(std::iter::once(first).chain(rest).collect()))
                }
                ("*", 2..) => {
                    let (consts, vars): (Vec<Linear>, Vec<Linear>) =
                        args.into_iter().partition(|(t, _)| t.is_empty());
                    let k: f64 = consts.iter().map(|(_, c)| c).product();
                    match &vars[..] {
                        [] => Ok((Vec::new(), k)),
                        [v] => Ok(scale(v.clone(), k)),
                        _ => Err((line, "a product of variables is not linear".into())),
                    }
                }
                _ => Err((
                    line,
                    format!("unsupported term operator {op:?}; expected +, - or * by a number"),
                )),
            }
        }
    }
}

/// Every conjunction of one disjunct of `a` with one of `b`.
fn product(a: Dnf, b: Dnf) -> Result<Dnf, String> {
    if a.len() * b.len() > MAX_DISJUNCTS {
        return Err(format!(
            "the property has more than {MAX_DISJUNCTS} cases once its asserts are multiplied out"
        ));
    }
    Ok(a.iter()
        .flat_map(|x| {
            b.iter().map(move |y| {
                let mut c = x.clone();
                c.extend(y.iter().cloned());
                c
            })
        })
        .collect())
}

/// A conjunction as the box of its input bounds and its output constraints; `None` where it
/// holds nowhere.
#[allow(clippy::type_complexity)]
fn split(
    conjunction: Vec<Atom>,
    inputs: usize,
) -> Result<Option<(Vec<f64>, Vec<f64>, Vec<Constraint>)>, (usize, String)> {
    let mut lower = vec![f64::NEG_INFINITY; inputs];
    let mut upper = vec![f64::INFINITY; inputs];
    let mut outputs = Vec::new();
    for atom in conjunction {
        let xs = atom
            .terms
            .iter()
            .filter(|(v, _)| matches!(v, Var::X(_)))
            .count();
        match (xs, &atom.terms[..]) {
            // a constant truth, or a falsehood: this conjunction holds nowhere
            (0, []) if atom.bound >= 0.0 => {}
            (0, []) => return Ok(None),
            (0, _) => outputs.push(Constraint {
                terms: atom
                    .terms
                    .iter()
                    .map(|(v, c)| match v {
                        Var::Y(j) => (*j, *c),
                        Var::X(_) => unreachable!("no X counted"),
                    })
                    .collect(),
                bound: atom.bound,
            }),
            (1, [(Var::X(i), c)]) => {
                let b = atom.bound / c;
                if *c > 0.0 {
                    upper[*i] = upper[*i].min(b);
                } else {
                    lower[*i] = lower[*i].max(b);
                }
            }
            _ => {
                return Err((
                    atom.line,
                    "a constraint over several inputs, or over inputs and outputs together; \
                     only bounds of one input X_i are supported on the inputs"
                        .into(),
                ));
            }
        }
    }
    Ok(Some((lower, upper, outputs)))
}

impl Region {
    /// Whether `x` lies in the box, each bound widened by `tol` (a counterexample's values
    /// pass through text and float32).
    pub fn contains(&self, x: &[f64], tol: f64) -> bool {
        x.len() == self.lower.len()
            && x.iter()
                .zip(self.lower.iter().zip(&self.upper))
                .all(|(v, (l, u))| *v >= l - tol && *v <= u + tol)
    }

    /// Whether the outputs `y` meet one of the disjuncts: the counterexample condition.
    pub fn violated_by(&self, y: &[f64]) -> bool {
        self.disjuncts
            .iter()
            .any(|conj| conj.iter().all(|c| c.value(y) <= 0.0))
    }

    /// Every constraint of every disjunct, in order, and each disjunct's indices into it.
    pub fn rows(&self) -> (Vec<&Constraint>, Vec<Vec<usize>>) {
        let mut rows = Vec::new();
        let mut disjuncts = Vec::with_capacity(self.disjuncts.len());
        for conj in &self.disjuncts {
            disjuncts.push((rows.len()..rows.len() + conj.len()).collect());
            rows.extend(conj);
        }
        (rows, disjuncts)
    }

    /// Whether lower bounds of the rows' slacks ([`Constraint::value`], one per row of
    /// [`Region::rows`]) prove that no output meets any disjunct: each disjunct has a
    /// constraint whose slack is positive everywhere.
    pub fn proven_by(&self, slack_lower: &[f32]) -> bool {
        let (_, disjuncts) = self.rows();
        disjuncts
            .iter()
            .all(|rows| rows.iter().any(|&r| slack_lower[r] > 0.0))
    }

    /// The robustness property this region states, where it is one: every disjunct a single
    /// `Y_j >= Y_label` (so that verifying it is bounding the margins `Y_label - Y_j`), as
    /// `(label, [j, ..])`.
    pub fn robustness(&self) -> Option<(usize, Vec<usize>)> {
        let mut label = None;
        let mut others = Vec::with_capacity(self.disjuncts.len());
        for conj in &self.disjuncts {
            let [c] = &conj[..] else { return None };
            let (l, j) = match c.terms[..] {
                [(a, ca), (b, cb)] if c.bound == 0.0 && ca == -cb && ca != 0.0 => {
                    if ca > 0.0 {
                        (a, b)
                    } else {
                        (b, a)
                    }
                }
                _ => return None,
            };
            if *label.get_or_insert(l) != l {
                return None;
            }
            others.push(j);
        }
        label.map(|l| (l, others))
    }
}

impl Region {
    /// `net` with the region's constraints folded into its last linear layer, so that its
    /// margins for label 0 are the slacks of [`Region::rows`]: output 0 is the constant 0 and
    /// output `1 + r` is `bound_r - sum coeff * y`, whence `z_0 - z_{1+r}` is row `r`'s slack.
    /// Any verifier of label margins thus bounds any linear output specification.
    pub fn spec_network(&self, net: &Network, device: &Device) -> Result<Network, NnError> {
        let arch = net.architecture();
        let last = match arch.layers.last() {
            Some(LayerSpec::Linear {
                name,
                in_features,
                out_features,
            }) => (name.clone(), *in_features, *out_features),
            _ => {
                return Err(NnError::Architecture {
                    model: arch.name.clone(),
                    layer: "output".into(),
                    message: "the last layer is not linear, so no specification folds into it"
                        .into(),
                });
            }
        };
        let (name, inputs, outputs) = last;
        let (rows, _) = self.rows();
        if let Some(j) = rows
            .iter()
            .flat_map(|r| &r.terms)
            .map(|(j, _)| *j)
            .find(|&j| j >= outputs)
        {
            return Err(NnError::Architecture {
                model: arch.name.clone(),
                layer: name,
                message: format!("the property reads Y_{j}, the network has {outputs} outputs"),
            });
        }
        let mut tensors = net.pytorch_tensors();
        let (weight, bias) = (format!("{name}.weight"), format!("{name}.bias"));
        let find = |t: &[(String, Vec<usize>, Vec<f32>)], n: &str| {
            t.iter()
                .position(|(m, ..)| m == n)
                .expect("the last layer's tensors")
        };
        let (w, b) = (find(&tensors, &weight), find(&tensors, &bias));
        let (w_old, b_old) = (tensors[w].2.clone(), tensors[b].2.clone());
        let mut w_new = vec![0.0f32; inputs];
        let mut b_new = vec![0.0f32];
        for r in &rows {
            let mut row = vec![0.0f64; inputs];
            let mut constant = r.bound;
            for (j, c) in &r.terms {
                for (k, v) in row.iter_mut().enumerate() {
                    *v -= c * f64::from(w_old[j * inputs + k]);
                }
                constant -= c * f64::from(b_old[*j]);
            }
            w_new.extend(row.into_iter().map(|v| v as f32));
            b_new.push(constant as f32);
        }
        let out = 1 + rows.len();
        tensors[w] = (weight, vec![out, inputs], w_new);
        tensors[b] = (bias, vec![out], b_new);
        let mut spec = arch.clone();
        spec.classes = out;
        if let Some(LayerSpec::Linear { out_features, .. }) = spec.layers.last_mut() {
            *out_features = out;
        }
        Network::from_tensors(&spec, Path::new(&arch.name), tensors, device)
    }
}

impl Constraint {
    /// The slack `sum coeff * y_j - bound`: positive where the constraint is violated.
    pub fn value(&self, y: &[f64]) -> f64 {
        self.terms.iter().map(|(j, c)| c * y[*j]).sum::<f64>() - self.bound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Property, String> {
        parse_vnnlib(text, Path::new("p.vnnlib")).map_err(|e| e.to_string())
    }

    const DECLS: &str = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n\
                         (declare-const Y_0 Real)\n(declare-const Y_1 Real)\n(declare-const Y_2 Real)\n";

    #[test]
    fn linear_terms_strict_comparisons_and_regions() {
        let text = format!(
            "{DECLS}; a comment (with parentheses\n\
             (assert (>= X_1 -1e-1))\n(assert (< X_1 0.5))\n\
             (assert (or\n  (and (<= X_0 1) (>= X_0 0) (<= (+ (* 2 Y_0) (- Y_1 3)) (* -1 Y_2)))\n\
               (and (<= X_0 2.5) (> X_0 1) (>= Y_2 Y_1))\n  (and (<= X_0 1) (>= X_0 0) (> Y_1 4))))\n"
        );
        let p = parse(&text).unwrap();
        assert_eq!((p.inputs, p.outputs), (2, 3));
        assert_eq!(p.regions.len(), 2);
        let first = &p.regions[0];
        assert_eq!(
            (first.lower.clone(), first.upper.clone()),
            (vec![0.0, -0.1], vec![1.0, 0.5])
        );
        // 2 Y_0 + Y_1 - 3 <= -Y_2  is  2 Y_0 + Y_1 + Y_2 <= 3; Y_1 > 4 is -Y_1 <= -4
        assert_eq!(
            first.disjuncts,
            vec![
                vec![Constraint {
                    terms: vec![(0, 2.0), (1, 1.0), (2, 1.0)],
                    bound: 3.0
                }],
                vec![Constraint {
                    terms: vec![(1, -1.0)],
                    bound: -4.0
                }],
            ]
        );
        let second = &p.regions[1];
        assert_eq!((second.lower[0], second.upper[0]), (1.0, 2.5));
        assert_eq!(
            second.disjuncts,
            vec![vec![Constraint {
                terms: vec![(1, 1.0), (2, -1.0)],
                bound: 0.0
            }]]
        );
        assert!(first.violated_by(&[0.0, 5.0, 0.0]));
        assert!(!first.violated_by(&[2.0, 3.0, 0.0]));
        assert!(first.contains(&[0.5, 0.0], 0.0) && !first.contains(&[1.5, 0.0], 0.0));
        assert_eq!(first.robustness(), None);
        assert_eq!(second.robustness(), Some((1, vec![2])));
    }

    #[test]
    fn a_robustness_property_is_recognised_and_proven_by_positive_margins() {
        let text = format!(
            "{DECLS}(assert (<= X_0 1))(assert (>= X_0 0))(assert (<= X_1 1))(assert (>= X_1 0))\n\
             (assert (or (and (>= Y_0 Y_2)) (and (>= Y_1 Y_2))))"
        );
        let p = parse(&text).unwrap();
        let r = &p.regions[0];
        assert_eq!(r.robustness(), Some((2, vec![0, 1])));
        assert!(r.proven_by(&[0.1, 0.2]));
        assert!(!r.proven_by(&[0.1, -0.2]));
    }

    #[test]
    fn errors_name_the_line() {
        let bounded =
            "(assert (<= X_0 1))\n(assert (>= X_0 0))\n(assert (<= X_1 1))\n(assert (>= X_1 0))\n";
        let cases = [
            ("(assert (= Y_0 Y_1))", 10, "unsupported operator \"=\""),
            (
                "(assert (<= Y_7 Y_1))",
                10,
                "Y_7 is used before it is declared",
            ),
            ("(assert (<= (* Y_0 Y_1) 1))", 10, "not linear"),
            (
                "(assert (<= (+ X_0 Y_1) 1))",
                10,
                "only bounds of one input",
            ),
            ("(assert (<= Y_0 1)", 10, "never closed"),
            ("(assert (<= Y_0 1)))", 10, "a ) without its ("),
            ("(assert (<= Y_0 abc))", 10, "abc: not a number"),
            ("(declare-const X_0 Real)", 10, "declared twice"),
        ];
        for (extra, line, needle) in cases {
            let text = format!("{DECLS}{bounded}{extra}\n");
            let e = parse(&text).unwrap_err();
            assert!(e.starts_with(&format!("p.vnnlib:{line}: ")), "{extra}: {e}");
            assert!(e.contains(needle), "{extra}: {e}");
        }
        let e = parse(&format!("{DECLS}(assert (<= X_0 1))\n(assert (<= Y_0 1))")).unwrap_err();
        assert!(e.contains("X_0 is not bounded above and below"), "{e}");
    }
}
