//! Runs every case and impl of the `ring` scenario in smoke mode (a few
//! milliseconds each, yielding instead of spinning) and checks that the
//! report is well-formed. Asserts shape, never time or ratios.

use std::collections::BTreeSet;

use ringflow_bench::{scenarios, Metric, Mode, Options, ScenarioReport, LIMIT};

/// Every (case, impl) the registry declares for `scenario`.
fn declared(scenario: &str) -> BTreeSet<(String, String)> {
    let all = scenarios::all();
    let s = all.iter().find(|s| s.name == scenario).expect("scenario registered");
    (s.cases)()
        .iter()
        .flat_map(|c| c.impls.iter().flat_map(|i| i.names()).map(|n| (c.name.to_string(), n.to_string())))
        .collect()
}

fn run(json: bool) -> (ScenarioReport, String) {
    let opts = Options { mode: Mode::Smoke, json, ..Options::default() };
    let mut out = Vec::new();
    let mut reports = ringflow_bench::run(Some("ring"), &opts, &mut out, &mut std::io::sink()).expect("run");
    assert_eq!(reports.len(), 1);
    (reports.remove(0), String::from_utf8(out).expect("utf-8 output"))
}

/// A JSON value of a flat object: the only kind the harness prints.
#[derive(Debug, PartialEq)]
enum Value {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

/// Parses `{"key":value,...}` with string, number, bool or null values.
fn parse_flat_object(line: &str) -> Vec<(String, Value)> {
    let body = line.strip_prefix('{').and_then(|l| l.strip_suffix('}')).expect("an object");
    let mut fields = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = parse_string(rest);
        rest = after.strip_prefix(':').expect("colon after key");
        let (value, after) = if rest.starts_with('"') {
            let (s, after) = parse_string(rest);
            (Value::Str(s), after)
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let raw = &rest[..end];
            let v = match raw {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                n => Value::Num(n.parse().unwrap_or_else(|_| panic!("bad number {n:?} in {line}"))),
            };
            (v, &rest[end..])
        };
        fields.push((key, value));
        rest = after.strip_prefix(',').unwrap_or(after);
    }
    fields
}

fn parse_string(s: &str) -> (String, &str) {
    let s = s.strip_prefix('"').expect("a string");
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (out, &s[i + 1..]),
            '\\' => out.push(chars.next().expect("escape").1),
            c => out.push(c),
        }
    }
    panic!("unterminated string in {s}");
}

fn num(fields: &[(String, Value)], key: &str) -> f64 {
    match fields.iter().find(|(k, _)| k == key) {
        Some((_, Value::Num(n))) => *n,
        other => panic!("field {key} should be a number, got {other:?}"),
    }
}

fn string<'a>(fields: &'a [(String, Value)], key: &str) -> &'a str {
    match fields.iter().find(|(k, _)| k == key) {
        Some((_, Value::Str(s))) => s,
        other => panic!("field {key} should be a string, got {other:?}"),
    }
}

fn check_records(report: &ScenarioReport) {
    assert!(report.failures.is_empty(), "failures: {:?}", report.failures);
    let measured: BTreeSet<_> = report.records.iter().map(|r| (r.case.to_string(), r.imp.to_string())).collect();
    assert_eq!(measured, declared("ring"));
    for r in &report.records {
        assert!(r.n > 0, "{}/{}: no samples", r.case, r.imp);
        assert!(r.msgs > 0, "{}/{}: no messages", r.case, r.imp);
        assert!(r.p50_ns <= r.p99_ns && r.p99_ns <= r.p999_ns && r.p999_ns <= r.max_ns, "{r:?}");
        assert!(r.msgs_per_sec > 0.0, "{r:?}");
        assert!(r.ratio_to_limit.is_some(), "{r:?}");
    }
    for (case, _) in &report.cases {
        for must in [LIMIT, "ringflow"] {
            assert!(report.records.iter().any(|r| r.case == *case && r.imp == must), "{case} lacks {must}");
        }
    }
    assert_eq!(report.checks.len(), 2);
}

#[test]
fn ring_scenario_smoke_json() {
    let (report, out) = run(true);
    check_records(&report);
    let mut seen = BTreeSet::new();
    let mut checks = 0;
    for line in out.lines() {
        let fields = parse_flat_object(line);
        if fields.iter().any(|(k, _)| k == "check") {
            checks += 1;
            for key in ["check", "expr", "value", "op", "target", "verdict"] {
                assert!(fields.iter().any(|(k, _)| k == key), "check line lacks {key}: {line}");
            }
            continue;
        }
        assert_eq!(string(&fields, "scenario"), "ring");
        let (p50, p99, p999, max) =
            (num(&fields, "p50_ns"), num(&fields, "p99_ns"), num(&fields, "p999_ns"), num(&fields, "max_ns"));
        assert!(p50 <= p99 && p99 <= p999 && p999 <= max, "{line}");
        assert!(num(&fields, "n") > 0.0, "{line}");
        assert!(num(&fields, "msgs_per_sec") > 0.0, "{line}");
        assert!(num(&fields, "ratio_to_limit") > 0.0, "{line}");
        let metric = string(&fields, "metric");
        assert!(metric == Metric::Latency.as_str() || metric == Metric::Throughput.as_str(), "{line}");
        seen.insert((string(&fields, "case").to_string(), string(&fields, "impl").to_string()));
    }
    assert_eq!(seen, declared("ring"));
    assert_eq!(checks, 2);
}

#[test]
fn ring_scenario_smoke_table() {
    let (report, out) = run(false);
    check_records(&report);
    let header = out.lines().find(|l| l.starts_with("case ")).expect("table header");
    for col in ["p50_ns", "p99_ns", "p999_ns", "max_ns", "n", "msgs_per_sec", "ratio_to_limit"] {
        assert!(header.split_whitespace().any(|c| c == col), "missing column {col}");
    }
    for (case, imp) in declared("ring") {
        assert!(
            out.lines().any(|l| {
                let mut cells = l.split_whitespace();
                cells.next() == Some(case.as_str()) && cells.next() == Some(imp.as_str())
            }),
            "no row for {case}/{imp}"
        );
    }
    for (case, _) in &report.cases {
        assert!(out.lines().any(|l| l.starts_with(&format!("{case}: "))), "no winner line for {case}");
    }
    assert!(out.contains("check pingpong-64B: ringflow p50 / limit p50 = "));
    assert!(out.contains("check stream-64B: ringflow msgs/s / rtrb msgs/s = "));
}

#[test]
fn unknown_scenario_is_an_error() {
    let opts = Options { mode: Mode::Smoke, json: true, ..Options::default() };
    let err = ringflow_bench::run(Some("nope"), &opts, &mut Vec::new(), &mut std::io::sink()).err();
    assert!(err.is_some_and(|e| e.to_string().contains("unknown scenario `nope`")));
}
