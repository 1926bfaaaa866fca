//! Topics: MQTT filter matching, and `topic_parsing` rules that take a measurement name, tags and
//! fields from a topic's levels, read as telegraf reads them.
//!
//! A rule's `topic` is split on `/` into levels; a literal level must equal the message's level,
//! `+` matches any one level, and one `#` any number of levels: the levels after `#` are counted
//! from the end of the message's topic. `measurement`, `tags` and `fields` are split the same
//! way: `_` (or an empty level) ignores the level, `#` switches to counting from the end, any
//! other text names the measurement, a tag or a field taking that level's value. A leading `/`
//! is an empty first level, as in MQTT. Without `#` every pattern has as many levels as `topic`.
//! A message whose topic does not match the rule is left as it is.

use std::collections::BTreeMap;

use super::config::RawTopicParsing;
use crate::output::{FieldValue, Metric};

/// `true` when `topic` (a published name) matches the subscription `filter` (MQTT 3.1.1
/// 4.7: `+` one level, `#` the parent and every level below; `$`-topics not matched by a leading
/// wildcard).
pub(crate) fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// A level index: from the start (`>= 0`) or from the end (`< 0`, -1 the last).
type Index = isize;

fn at<'a>(levels: &[&'a str], i: Index) -> &'a str {
    let idx = if i >= 0 {
        i as usize
    } else {
        (levels.len() as isize + i) as usize
    };
    levels[idx]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldType {
    Int,
    UInt,
    Float,
}

#[derive(Debug, Clone)]
pub(crate) struct TopicParser {
    /// Literal levels of the rule's topic that must match.
    literals: Vec<(Index, String)>,
    var_length: bool,
    /// Levels a matching topic has (exactly, or at least with `#`).
    min_levels: usize,
    measurement: Option<Index>,
    tags: Vec<(String, Index)>,
    fields: Vec<(String, Index, Option<FieldType>)>,
}

/// Splits a pattern into named levels with their index; returns (names, levels counted).
fn pattern(text: &str, what: &str) -> Result<(Vec<(String, Index)>, usize), String> {
    let parts: Vec<&str> = text.split('/').collect();
    let n = parts.len() as isize;
    let mut invert = false;
    let mut counted = 0;
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        match *p {
            "_" | "" => counted += 1,
            "#" if invert => return Err(format!("{what} can only contain one #")),
            "#" => invert = true,
            name => {
                counted += 1;
                let idx = if invert { i as isize - n } else { i as isize };
                out.push((name.to_owned(), idx));
            }
        }
    }
    Ok((out, counted))
}

impl TopicParser {
    pub(crate) fn new(raw: &RawTopicParsing) -> Result<TopicParser, String> {
        let topic = raw.topic.get_ref();
        let parts: Vec<&str> = topic.split('/').collect();
        let n = parts.len() as isize;
        let mut var_length = false;
        let mut topic_levels = 0;
        let mut literals = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            match *p {
                "+" => topic_levels += 1,
                "#" if var_length => return Err("topic can only contain one #".into()),
                "#" => var_length = true,
                lit => {
                    let idx = if var_length {
                        i as isize - n
                    } else {
                        i as isize
                    };
                    literals.push((idx, lit.to_owned()));
                    topic_levels += 1;
                }
            }
        }
        let mut min_levels = topic_levels;
        let mut check =
            |text: &Option<String>, what: &str| -> Result<Vec<(String, Index)>, String> {
                let Some(text) = text.as_deref().filter(|t| !t.is_empty()) else {
                    return Ok(Vec::new());
                };
                let (names, counted) = pattern(text, what)?;
                if !var_length && counted != topic_levels {
                    return Err(format!(
                        "{what} has {counted} levels but topic has {topic_levels}"
                    ));
                }
                min_levels = min_levels.max(counted);
                Ok(names)
            };
        let measurement = check(&raw.measurement, "measurement")?;
        if measurement.len() > 1 {
            return Err("measurement can only name one level".into());
        }
        let tags = check(&raw.tags, "tags")?;
        let field_names = check(&raw.fields, "fields")?;
        let types: BTreeMap<String, String> = raw.types.clone().unwrap_or_default();
        let mut fields = Vec::new();
        for (name, idx) in field_names {
            let ty = match types.get(&name).map(String::as_str) {
                None => None,
                Some("int") => Some(FieldType::Int),
                Some("uint") => Some(FieldType::UInt),
                Some("float") => Some(FieldType::Float),
                Some(other) => {
                    return Err(format!(
                        "type {other:?} of field {name:?} is not supported: use int, uint or float"
                    ));
                }
            };
            fields.push((name, idx, ty));
        }
        // A `types` key that names no field has no effect, as in telegraf (whose sample
        // writes a placeholder `key = type`): refusing it would refuse a pasted block.
        Ok(TopicParser {
            literals,
            var_length,
            min_levels,
            measurement: measurement.first().map(|(_, i)| *i),
            tags,
            fields,
        })
    }

    /// Applies the rule to `metric` when `topic` matches it. Err: a level that cannot be
    /// converted to its field's type (the message then counts as unparsable, as in telegraf).
    pub(crate) fn apply(&self, metric: &mut Metric, topic: &str) -> Result<(), String> {
        let levels: Vec<&str> = topic.split('/').collect();
        let fits = if self.var_length {
            levels.len() >= self.min_levels
        } else {
            levels.len() == self.min_levels
        };
        if !fits || !self.literals.iter().all(|(i, lit)| at(&levels, *i) == lit) {
            return Ok(());
        }
        if let Some(i) = self.measurement {
            metric.name = at(&levels, i).to_owned().into();
        }
        for (name, i) in &self.tags {
            set_tag(metric, name, at(&levels, *i));
        }
        for (name, i, ty) in &self.fields {
            let raw = at(&levels, *i);
            let value = match ty {
                None => FieldValue::Str(raw.to_owned()),
                Some(FieldType::Int) => FieldValue::Int(raw.parse().map_err(|e| {
                    format!("topic level {raw:?} of field {name:?} is not an int: {e}")
                })?),
                Some(FieldType::UInt) => FieldValue::UInt(raw.parse().map_err(|e| {
                    format!("topic level {raw:?} of field {name:?} is not a uint: {e}")
                })?),
                Some(FieldType::Float) => FieldValue::Float(raw.parse().map_err(|e| {
                    format!("topic level {raw:?} of field {name:?} is not a float: {e}")
                })?),
            };
            match metric.fields.iter_mut().find(|(k, _)| k == name) {
                Some((_, v)) => *v = value,
                None => metric.fields.push((name.clone().into(), value)),
            }
        }
        Ok(())
    }
}

/// Sets a tag, replacing an existing one of the same key (line protocol keeps one per key).
pub(crate) fn set_tag(metric: &mut Metric, key: &str, value: &str) {
    match metric.tags.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => value.clone_into(v),
        None => metric.tags.push((key.to_owned().into(), value.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        topic: &str,
        m: &str,
        tags: &str,
        fields: &str,
        types: &[(&str, &str)],
    ) -> Result<TopicParser, String> {
        TopicParser::new(&RawTopicParsing {
            topic: toml::Spanned::new(0..0, topic.to_owned()),
            measurement: Some(m.to_owned()),
            tags: Some(tags.to_owned()),
            fields: Some(fields.to_owned()),
            types: Some(
                types
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
            ),
        })
    }

    fn metric() -> Metric {
        Metric::new("mqtt_consumer", 1).field("value", 45.0)
    }

    #[test]
    fn filters_match_like_mqtt() {
        assert!(filter_matches("sensors/#", "sensors"));
        assert!(filter_matches("sensors/#", "sensors/a/b"));
        assert!(filter_matches("sensors/+/t", "sensors/x/t"));
        assert!(!filter_matches("sensors/+/t", "sensors/x/y/t"));
        assert!(filter_matches("+/+", "/a"));
        assert!(!filter_matches("+", "/a"));
        assert!(filter_matches("#", "a/b"));
        assert!(!filter_matches("#", "$SYS/broker"));
        assert!(!filter_matches("a/b", "a/b/c"));
    }

    #[test]
    fn telegrafs_readme_example() {
        let p = rule(
            "telegraf/+/cpu/23",
            "_/_/measurement/_",
            "tag/_/_/_",
            "_/_/_/test",
            &[("test", "int")],
        )
        .unwrap();
        let mut m = metric();
        p.apply(&mut m, "telegraf/one/cpu/23").unwrap();
        assert_eq!(m.name, "cpu");
        assert_eq!(m.tags, [("tag".into(), "telegraf".to_owned())]);
        assert_eq!(m.fields[1], ("test".into(), FieldValue::Int(23)));
    }

    #[test]
    fn non_matching_topics_are_untouched() {
        let p = rule(
            "telegraf/+/cpu/23",
            "_/_/measurement/_",
            "tag/_/_/_",
            "",
            &[],
        )
        .unwrap();
        for t in [
            "telegraf/one/mem/23",
            "telegraf/one/cpu",
            "telegraf/one/cpu/23/x",
        ] {
            let mut m = metric();
            p.apply(&mut m, t).unwrap();
            assert_eq!(m, metric(), "{t}");
        }
    }

    #[test]
    fn leading_slash_is_an_empty_level() {
        let p = rule("/site/+/+", "_/_/_/measurement", "_/_/room/_", "", &[]).unwrap();
        let mut m = metric();
        p.apply(&mut m, "/site/kitchen/temperature").unwrap();
        assert_eq!(m.name, "temperature");
        assert_eq!(m.tags, [("room".into(), "kitchen".to_owned())]);
        let mut m = metric();
        p.apply(&mut m, "site/kitchen/temperature").unwrap();
        assert_eq!(m, metric());
    }

    #[test]
    fn hash_counts_the_rest_from_the_end() {
        let p = rule(
            "devices/#/reading",
            "_/#/measurement/_",
            "site/#/_/_",
            "",
            &[],
        )
        .unwrap();
        let mut m = metric();
        p.apply(&mut m, "devices/a/b/c/humidity/reading").unwrap();
        assert_eq!(m.name, "humidity");
        assert_eq!(m.tags, [("site".into(), "devices".to_owned())]);
        let mut m = metric();
        p.apply(&mut m, "devices/x/reading/other").unwrap();
        assert_eq!(m, metric());
    }

    #[test]
    fn field_types_convert_or_fail() {
        let p = rule(
            "s/+/+",
            "",
            "",
            "_/id/level",
            &[("id", "uint"), ("level", "float")],
        )
        .unwrap();
        let mut m = metric();
        p.apply(&mut m, "s/7/0.5").unwrap();
        assert_eq!(m.fields[1], ("id".into(), FieldValue::UInt(7)));
        assert_eq!(m.fields[2], ("level".into(), FieldValue::Float(0.5)));
        assert!(p.apply(&mut metric(), "s/x/0.5").is_err());
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!(rule("a/b", "m/_/_", "", "", &[]).is_err());
        assert!(rule("a/#/#", "", "", "", &[]).is_err());
        assert!(rule("a/+", "m/n", "", "", &[]).is_err());
        assert!(rule("a/+", "", "", "_/f", &[("f", "complex")]).is_err());
        // A type for a field the rule does not name has no effect, as in telegraf.
        assert!(rule("a/+", "", "", "_/f", &[("g", "int")]).is_ok());
    }
}
