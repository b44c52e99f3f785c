//! Our VNN-COMP results beside the competition's: per instance, the entrants' answers, their
//! consensus (a conflict among them named), and whether ours agrees; per tool, decided counts
//! and time.
//!
//! Results files are claims: two entrants of 2022's `mnist_fc` answered `unsat` where the others
//! found counterexamples. The consensus is the majority of the decided answers (`sat`,
//! `unsat`); an instance where the tools disagree is listed with who said what, and a tie has
//! no consensus.

use std::collections::BTreeMap;
use std::path::Path;

use mixtrain_interop::stem;

use crate::TrainError;
use crate::vnncomp::read_instances;

/// One tool's answer to one instance: the result word and the run time, seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// `sat`, `unsat`, `timeout`, `unknown`, or a tool's error word.
    pub result: String,
    /// Seconds the tool reported running (preparation not included).
    pub seconds: f64,
}

impl Answer {
    fn decided(&self) -> bool {
        self.result == "sat" || self.result == "unsat"
    }
}

/// An instance by its network's and property's stems (`mnist-net_256x2`, `prop_0_0.03`).
pub type InstanceKey = (String, String);

/// One instance compared.
#[derive(Clone, Debug)]
pub struct ComparedInstance {
    /// The network's and property's stems.
    pub key: InstanceKey,
    /// Our answer, if our results have the instance.
    pub ours: Option<Answer>,
    /// Each tool's answer, by tool name.
    pub tools: BTreeMap<String, Answer>,
    /// The majority of the tools' decided answers; `None` where none decided or they tie.
    pub consensus: Option<String>,
    /// Where the tools' decided answers differ: who said what.
    pub conflict: Option<String>,
}

impl ComparedInstance {
    /// `agrees`, `contradicts` (a decided answer against the consensus), `undecided` (ours is
    /// not sat or unsat), `no consensus` or `missing`.
    pub fn verdict(&self) -> &'static str {
        match (&self.ours, &self.consensus) {
            (None, _) => "missing",
            (Some(a), _) if !a.decided() => "undecided",
            (Some(_), None) => "no consensus",
            (Some(a), Some(c)) if &a.result == c => "agrees",
            (Some(_), Some(_)) => "contradicts",
        }
    }
}

/// Counts and time of one tool over the compared instances.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolSummary {
    /// Instances answered `sat`.
    pub sat: usize,
    /// Instances answered `unsat`.
    pub unsat: usize,
    /// Decided answers against the consensus.
    pub contradictions: usize,
    /// Seconds over every instance, decided or not.
    pub seconds: f64,
}

/// Every instance of `instances` (or of the results, without it), ours beside each tool's.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// The instances, in `instances.csv` order.
    pub instances: Vec<ComparedInstance>,
}

/// Reads a results CSV (`benchmark,onnx,vnnlib,prep_time,result,run_time` per row).
pub fn read_results(path: &Path) -> Result<BTreeMap<InstanceKey, Answer>, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|source| TrainError::Io {
        path: path.into(),
        source,
    })?;
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let bad = |message: String| TrainError::Config {
            origin: format!("{}:{}", path.display(), n + 1),
            message,
        };
        let [_, onnx, vnnlib, _, result, seconds] = fields[..] else {
            return Err(bad(format!(
                "{line:?}: expected benchmark,onnx,vnnlib,prep_time,result,run_time"
            )));
        };
        let seconds: f64 = seconds
            .parse()
            .map_err(|_| bad(format!("run time {seconds:?} is not a number")))?;
        out.insert(
            key(onnx, vnnlib),
            Answer {
                result: result.to_string(),
                seconds,
            },
        );
    }
    Ok(out)
}

/// The stems of an instance's network and property.
pub fn key(onnx: &str, vnnlib: &str) -> InstanceKey {
    (stem(Path::new(onnx)), stem(Path::new(vnnlib)))
}

/// Compares `ours` with every `(tool, results)` on the instances of `instances` (an
/// `instances.csv`), or on every instance of ours without it.
pub fn compare(
    ours: &BTreeMap<InstanceKey, Answer>,
    tools: &BTreeMap<String, BTreeMap<InstanceKey, Answer>>,
    instances: Option<&Path>,
) -> Result<Comparison, TrainError> {
    let keys: Vec<InstanceKey> = match instances {
        Some(csv) => read_instances(csv)?
            .iter()
            .map(|i| key(&i.onnx, &i.vnnlib))
            .collect(),
        None => ours.keys().cloned().collect(),
    };
    let instances = keys
        .into_iter()
        .map(|k| {
            let answers: BTreeMap<String, Answer> = tools
                .iter()
                .filter_map(|(tool, rows)| Some((tool.clone(), rows.get(&k)?.clone())))
                .collect();
            let (consensus, conflict) = consensus(&answers);
            ComparedInstance {
                ours: ours.get(&k).cloned(),
                key: k,
                tools: answers,
                consensus,
                conflict,
            }
        })
        .collect();
    Ok(Comparison { instances })
}

fn consensus(answers: &BTreeMap<String, Answer>) -> (Option<String>, Option<String>) {
    let said = |word: &str| -> Vec<&str> {
        answers
            .iter()
            .filter(|(_, a)| a.result == word)
            .map(|(t, _)| t.as_str())
            .collect()
    };
    let (sat, unsat) = (said("sat"), said("unsat"));
    let majority = match sat.len().cmp(&unsat.len()) {
        std::cmp::Ordering::Greater => Some("sat".to_string()),
        std::cmp::Ordering::Less => Some("unsat".to_string()),
        std::cmp::Ordering::Equal => None,
    };
    let conflict = (!sat.is_empty() && !unsat.is_empty())
        .then(|| format!("sat: {}; unsat: {}", sat.join(" "), unsat.join(" ")));
    (majority, conflict)
}

impl Comparison {
    /// Our summary and each tool's, over the compared instances.
    pub fn summaries(&self) -> (ToolSummary, BTreeMap<String, ToolSummary>) {
        let add = |s: &mut ToolSummary, a: &Answer, consensus: &Option<String>| {
            s.sat += usize::from(a.result == "sat");
            s.unsat += usize::from(a.result == "unsat");
            s.contradictions +=
                usize::from(a.decided() && consensus.as_ref().is_some_and(|c| c != &a.result));
            s.seconds += a.seconds;
        };
        let mut ours = ToolSummary::default();
        let mut tools: BTreeMap<String, ToolSummary> = BTreeMap::new();
        for i in &self.instances {
            if let Some(a) = &i.ours {
                add(&mut ours, a, &i.consensus);
            }
            for (tool, a) in &i.tools {
                add(tools.entry(tool.clone()).or_default(), a, &i.consensus);
            }
        }
        (ours, tools)
    }

    /// The comparison as markdown: the per-tool summary, then one row per instance.
    pub fn to_markdown(&self) -> String {
        let (ours, tools) = self.summaries();
        let mut s = String::from(
            "| tool | decided | sat | unsat | against the consensus | seconds (all instances) |\n\
             |---|---|---|---|---|---|\n",
        );
        let row = |name: &str, t: &ToolSummary| {
            format!(
                "| {name} | {} | {} | {} | {} | {:.1} |\n",
                t.sat + t.unsat,
                t.sat,
                t.unsat,
                t.contradictions,
                t.seconds
            )
        };
        s.push_str(&row("**ours**", &ours));
        for (tool, t) in &tools {
            s.push_str(&row(tool, t));
        }
        s.push_str(
            "\n| network | property | ours | seconds | consensus | ours vs consensus | conflict among the tools |\n\
             |---|---|---|---|---|---|---|\n",
        );
        for i in &self.instances {
            let (result, seconds) = i
                .ours
                .as_ref()
                .map_or(("-".to_string(), "-".to_string()), |a| {
                    (a.result.clone(), format!("{:.2}", a.seconds))
                });
            s.push_str(&format!(
                "| {} | {} | {result} | {seconds} | {} | {} | {} |\n",
                i.key.0,
                i.key.1,
                i.consensus.as_deref().unwrap_or("-"),
                i.verdict(),
                i.conflict.as_deref().unwrap_or(""),
            ));
        }
        s
    }
}
