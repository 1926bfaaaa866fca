//! telegraf's metric filters of one input, applied in telegraf's order: the selectors
//! (`namepass`/`namedrop`, `tagpass`/`tagdrop`) look at the metric as the input made it, before
//! `name_override` and the configured tags; the modifiers (`fieldinclude`/`fieldexclude`, alias
//! `fieldpass`/`fielddrop`, and `taginclude`/`tagexclude`) then remove fields and tags; a metric
//! left without fields is dropped.
//!
//! The configured tags (instance and global) are filtered once when the config is resolved (see
//! [`Filter::keep_tag`]), since they are the same for every metric of the instance.

use crate::options::GlobSet;

use super::metric::Metric;

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub namepass: Option<GlobSet>,
    pub namedrop: Option<GlobSet>,
    /// Tag key and the value patterns: the metric passes if one of its tags matches one entry.
    pub tagpass: Vec<(String, GlobSet)>,
    /// The metric is dropped if one of its tags matches one entry.
    pub tagdrop: Vec<(String, GlobSet)>,
    pub fieldinclude: Option<GlobSet>,
    pub fieldexclude: Option<GlobSet>,
    pub taginclude: Option<GlobSet>,
    pub tagexclude: Option<GlobSet>,
}

impl Filter {
    /// Whether any rule is set (an unset filter costs nothing per metric).
    pub fn is_active(&self) -> bool {
        self.namepass.is_some()
            || self.namedrop.is_some()
            || !self.tagpass.is_empty()
            || !self.tagdrop.is_empty()
            || self.fieldinclude.is_some()
            || self.fieldexclude.is_some()
            || self.taginclude.is_some()
            || self.tagexclude.is_some()
    }

    /// The selectors: does the metric pass at all?
    pub fn select(&self, m: &Metric) -> bool {
        if self.namepass.as_ref().is_some_and(|p| !p.matches(&m.name)) {
            return false;
        }
        if self.namedrop.as_ref().is_some_and(|d| d.matches(&m.name)) {
            return false;
        }
        let tag_matches = |rules: &[(String, GlobSet)]| {
            rules.iter().any(|(key, values)| {
                m.tags
                    .iter()
                    .any(|(k, v)| k.as_ref() == key && values.matches(v))
            })
        };
        if !self.tagpass.is_empty() && !tag_matches(&self.tagpass) {
            return false;
        }
        if !self.tagdrop.is_empty() && tag_matches(&self.tagdrop) {
            return false;
        }
        true
    }

    pub fn keep_field(&self, key: &str) -> bool {
        self.fieldinclude.as_ref().is_none_or(|i| i.matches(key))
            && self.fieldexclude.as_ref().is_none_or(|e| !e.matches(key))
    }

    pub fn keep_tag(&self, key: &str) -> bool {
        self.taginclude.as_ref().is_none_or(|i| i.matches(key))
            && self.tagexclude.as_ref().is_none_or(|e| !e.matches(key))
    }

    /// Applies the selectors and then the modifiers; `false` when the metric is dropped.
    pub fn apply(&self, m: &mut Metric) -> bool {
        if !self.select(m) {
            return false;
        }
        m.fields.retain(|(k, _)| self.keep_field(k));
        m.tags.retain(|(k, _)| self.keep_tag(k));
        !m.fields.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(p: &[&str]) -> Option<GlobSet> {
        Some(GlobSet::new(p, "").unwrap())
    }

    fn metric() -> Metric {
        Metric::new("cpu", 1)
            .tag("cpu", "cpu0")
            .tag("host", "a")
            .field("usage_idle", 1.0)
            .field("usage_user", 2.0)
            .field("time_idle", 3.0)
    }

    #[test]
    fn selectors_then_modifiers_as_telegraf() {
        let mut f = Filter {
            namepass: set(&["cpu", "mem"]),
            ..Default::default()
        };
        assert!(f.select(&metric()));
        f.namedrop = set(&["c*"]);
        assert!(!f.select(&metric()), "pass and drop: drop wins");

        let f = Filter {
            tagpass: vec![("cpu".into(), GlobSet::new(&["cpu-total"], "").unwrap())],
            ..Default::default()
        };
        assert!(!f.select(&metric()));
        let f = Filter {
            tagdrop: vec![("cpu".into(), GlobSet::new(&["cpu[0-3]"], "").unwrap())],
            ..Default::default()
        };
        assert!(!f.select(&metric()));

        let f = Filter {
            fieldinclude: set(&["usage_*"]),
            fieldexclude: set(&["usage_user"]),
            tagexclude: set(&["host"]),
            ..Default::default()
        };
        let mut m = metric();
        assert!(f.apply(&mut m));
        assert_eq!(m.fields.len(), 1);
        assert_eq!(m.fields[0].0, "usage_idle");
        assert_eq!(m.tags.len(), 1);

        let f = Filter {
            fieldinclude: set(&["nothing"]),
            ..Default::default()
        };
        assert!(!f.apply(&mut metric()), "no field left: dropped");
    }
}
