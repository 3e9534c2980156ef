//! Shell-style globs for Monit service names: `*` any run, `?` one character, everything else
//! literal. Service names are short, so the simple backtracking matcher is enough.

/// A validated glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("empty service pattern".into());
        }
        if pattern.chars().any(|c| c.is_control()) {
            return Err(format!(
                "service pattern {pattern:?} contains a control character"
            ));
        }
        Ok(Glob(pattern.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, name: &str) -> bool {
        let p: Vec<char> = self.0.chars().collect();
        let s: Vec<char> = name.chars().collect();
        let (mut pi, mut si) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
                pi += 1;
                si += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some((pi, si));
                pi += 1;
            } else if let Some((sp, ss)) = star {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == '*')
    }
}

impl Glob {
    /// Is there a service name both patterns match? (Then an event of it feeds both
    /// components.) Reachability in the product of the two patterns' automata: a state is a
    /// position in each, `*` may be skipped, and each step reads one character that both sides
    /// accept: a literal of either pattern, or one that neither names.
    pub fn overlaps(&self, other: &Glob) -> bool {
        let p: Vec<char> = self.0.chars().collect();
        let q: Vec<char> = other.0.chars().collect();
        let mut alphabet: Vec<char> = p
            .iter()
            .chain(&q)
            .copied()
            .filter(|c| *c != '*' && *c != '?')
            .collect();
        alphabet.sort_unstable();
        alphabet.dedup();
        alphabet.push('\u{0}'); // stands for any character neither pattern names
        let close = |set: &mut Vec<(usize, usize)>| {
            let mut k = 0;
            while k < set.len() {
                let (i, j) = set[k];
                for next in [
                    (i < p.len() && p[i] == '*').then_some((i + 1, j)),
                    (j < q.len() && q[j] == '*').then_some((i, j + 1)),
                ]
                .into_iter()
                .flatten()
                {
                    if !set.contains(&next) {
                        set.push(next);
                    }
                }
                k += 1;
            }
        };
        let step = |pat: &[char], i: usize, c: char| -> Option<usize> {
            match pat.get(i)? {
                '*' => Some(i),
                '?' => Some(i + 1),
                &l if l == c => Some(i + 1),
                _ => None,
            }
        };
        let mut seen = vec![(0, 0)];
        close(&mut seen);
        let mut k = 0;
        while k < seen.len() {
            let (i, j) = seen[k];
            if i == p.len() && j == q.len() {
                return true;
            }
            for &c in &alphabet {
                if let (Some(a), Some(b)) = (step(&p, i, c), step(&q, j, c)) {
                    let mut n = vec![(a, b)];
                    close(&mut n);
                    for s in n {
                        if !seen.contains(&s) {
                            seen.push(s);
                        }
                    }
                }
            }
            k += 1;
        }
        false
    }
}

impl<'de> serde::Deserialize<'de> for Glob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Glob, D::Error> {
        let s = String::deserialize(d)?;
        Glob::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).unwrap().matches(s)
    }

    #[test]
    fn overlap_is_a_name_both_match() {
        let o = |a: &str, b: &str| Glob::new(a).unwrap().overlaps(&Glob::new(b).unwrap());
        assert!(o("mysql*", "*sql"));
        assert!(o("mysql", "mysql"));
        assert!(o("mysql-*", "mysql-?"));
        assert!(o("*", "web"));
        assert!(o("a*c", "*b*"));
        assert!(!o("mysql", "mysql-*"));
        assert!(!o("web?", "web"));
        assert!(!o("db-*", "web-*"));
        assert!(!o("a*", "b*"));
        assert!(!o("??", "???"));
    }

    #[test]
    fn literal_star_and_question() {
        assert!(m("mysql", "mysql"));
        assert!(!m("mysql", "mysql-2"));
        assert!(m("mysql-*", "mysql-replica"));
        assert!(m("mysql-*", "mysql-"));
        assert!(!m("mysql-*", "mysql"));
        assert!(m("*sql*", "postgresql-main"));
        assert!(m("web?", "web1"));
        assert!(!m("web?", "web10"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
    }
}
