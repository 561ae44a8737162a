//! The seller's FAQ: entries (a question, other ways buyers ask it, the answer, an optional
//! product or category scope, tags, a language) and the two files they travel in — CSV for
//! spreadsheets and Markdown for people — each read whole, with every problem named by line,
//! before anything is saved.

use crate::values::{Answer, Lang, Slug, Tags, Text};
use crate::{Invalid, Invalids};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most alternative phrasings one entry may have.
pub const MAX_PHRASINGS: usize = 30;

/// A FAQ entry as the seller writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaqDraft {
    /// A short unique name (`where-is-my-code`): imports update the entry with the same key.
    pub key: Slug,
    /// The question as the seller would put it.
    pub question: Text,
    /// Other ways buyers ask it (at most 30).
    #[serde(default)]
    pub phrasings: Vec<Text>,
    /// The answer sent to the buyer.
    pub answer: Answer,
    /// A product SKU or a category the entry is about; none: the whole shop.
    #[serde(default)]
    pub scope: Option<Text>,
    /// Tags to group entries by.
    #[serde(default)]
    pub tags: Tags,
    /// The language of the question and answer.
    #[serde(default)]
    pub lang: Lang,
}

impl FaqDraft {
    /// Checks what serde cannot: the number of phrasings.
    pub fn check(&self) -> Result<(), Invalid> {
        if self.phrasings.len() > MAX_PHRASINGS {
            return Err(Invalid::new(
                "phrasings",
                format!("at most {MAX_PHRASINGS} phrasings"),
            ));
        }
        Ok(())
    }

    /// The texts a buyer's question is compared with: the question, then each phrasing.
    pub fn asked(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.question.as_str()).chain(self.phrasings.iter().map(Text::as_str))
    }
}

fn field<T>(problems: &mut Invalids, at: &str, name: &str, result: Result<T, String>) -> Option<T> {
    problems.check(result.map_err(|m| Invalid::new(format!("{at}: {name}"), m)))
}

fn draft(problems: &mut Invalids, at: &str, raw: RawEntry<'_>) -> Option<FaqDraft> {
    let before = problems.0.len();
    let key = field(problems, at, "key", Slug::parse(raw.key.trim()));
    let question = field(problems, at, "question", Text::parse(raw.question));
    let phrasings: Vec<Text> = raw
        .phrasings
        .iter()
        .filter_map(|p| field(problems, at, "phrasing", Text::parse(p)))
        .collect();
    let answer = field(problems, at, "answer", Answer::parse(raw.answer));
    let scope = match raw.scope.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => field(problems, at, "scope", Text::parse(s)).map(Some),
        None => Some(None),
    };
    let tags = field(problems, at, "tags", Tags::parse_list(raw.tags));
    let lang = match raw.lang.trim() {
        "" => Some(Lang::default()),
        l => field(problems, at, "lang", Lang::parse(l)),
    };
    let draft = FaqDraft {
        key: key?,
        question: question?,
        phrasings,
        answer: answer?,
        scope: scope?,
        tags: tags?,
        lang: lang?,
    };
    if let Err(e) = draft.check() {
        problems.push(Invalid::new(format!("{at}: {}", e.field), e.message));
    }
    (problems.0.len() == before).then_some(draft)
}

struct RawEntry<'a> {
    key: &'a str,
    question: &'a str,
    phrasings: Vec<&'a str>,
    answer: &'a str,
    scope: Option<&'a str>,
    tags: &'a str,
    lang: &'a str,
}

fn unique(drafts: &[FaqDraft], problems: &mut Invalids) {
    let mut seen = std::collections::HashSet::new();
    for d in drafts {
        if !seen.insert(d.key.as_str()) {
            problems.push(Invalid::new(
                "key",
                format!("{} is used by more than one entry", d.key),
            ));
        }
    }
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 7] = [
    "key",
    "question",
    "phrasings",
    "answer",
    "scope",
    "tags",
    "lang",
];

/// Reads a CSV export (phrasings separated by `|`); every problem is named by line.
pub fn parse_csv(text: &str) -> Result<Vec<FaqDraft>, Invalids> {
    let mut problems = Invalids::default();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|c| c.trim().to_ascii_lowercase()).collect(),
        Err(e) => {
            problems.push(Invalid::new("line 1", format!("not CSV: {e}")));
            return Err(problems);
        }
    };
    let column = |name: &str| header.iter().position(|c| c == name);
    let (Some(key), Some(question), Some(answer)) =
        (column("key"), column("question"), column("answer"))
    else {
        problems.push(Invalid::new(
            "line 1",
            format!(
                "the first line must name the columns: {}",
                CSV_COLUMNS.join(",")
            ),
        ));
        return Err(problems);
    };
    let (phrasings, scope, tags, lang) = (
        column("phrasings"),
        column("scope"),
        column("tags"),
        column("lang"),
    );
    let mut drafts = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let at = format!("line {}", i + 2);
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(Invalid::new(at, format!("not CSV: {e}")));
                continue;
            }
        };
        let get = |c: Option<usize>| c.and_then(|c| record.get(c)).unwrap_or("");
        let raw = RawEntry {
            key: get(Some(key)),
            question: get(Some(question)),
            phrasings: get(phrasings)
                .split('|')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect(),
            answer: get(Some(answer)),
            scope: Some(get(scope)),
            tags: get(tags),
            lang: get(lang),
        };
        drafts.extend(draft(&mut problems, &at, raw));
    }
    unique(&drafts, &mut problems);
    if problems.0.is_empty() {
        Ok(drafts)
    } else {
        Err(problems)
    }
}

/// Writes entries as CSV with the columns of [`CSV_COLUMNS`].
pub fn write_csv(entries: &[FaqDraft]) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(CSV_COLUMNS);
    for e in entries {
        let phrasings = e
            .phrasings
            .iter()
            .map(Text::as_str)
            .collect::<Vec<_>>()
            .join(" | ");
        let _ = writer.write_record([
            e.key.as_str(),
            e.question.as_str(),
            &phrasings,
            e.answer.as_str(),
            e.scope.as_ref().map_or("", Text::as_str),
            &e.tags.to_stored(),
            e.lang.as_str(),
        ]);
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Reads the Markdown form: each entry starts with a `## question` heading, followed by
/// `key:`, `tags:`, `lang:`, `scope:` and `also:` (a phrasing) lines, a blank line, and the
/// answer up to the next heading. Lines before the first heading (a `# title`) are ignored.
pub fn parse_markdown(text: &str) -> Result<Vec<FaqDraft>, Invalids> {
    let mut problems = Invalids::default();
    let lines: Vec<&str> = text.lines().collect();
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("## "))
        .map(|(i, _)| i)
        .collect();
    let mut drafts = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(lines.len());
        let at = format!("line {}", start + 1);
        let question = lines[start].trim_start_matches('#').trim();
        let mut raw = RawEntry {
            key: "",
            question,
            phrasings: Vec::new(),
            answer: "",
            scope: None,
            tags: "",
            lang: "",
        };
        let mut i = start + 1;
        while i < end && !lines[i].trim().is_empty() {
            let line = lines[i];
            match line.split_once(':').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("key", v)) => raw.key = v,
                Some(("tags", v)) => raw.tags = v,
                Some(("lang", v)) => raw.lang = v,
                Some(("scope", v)) => raw.scope = Some(v),
                Some(("also", v)) => raw.phrasings.push(v),
                _ => problems.push(Invalid::new(
                    format!("line {}", i + 1),
                    "expected key:, tags:, lang:, scope: or also: (then a blank line and the answer)",
                )),
            }
            i += 1;
        }
        let first = (i..end).find(|&j| !lines[j].trim().is_empty());
        let last = (i..end).rev().find(|&j| !lines[j].trim().is_empty());
        let answer = match (first, last) {
            (Some(a), Some(b)) => lines[a..=b].join("\n"),
            _ => String::new(),
        };
        raw.answer = &answer;
        drafts.extend(draft(&mut problems, &at, raw));
    }
    if starts.is_empty() {
        problems.push(Invalid::new(
            "line 1",
            "no entry: each starts with a '## question' line",
        ));
    }
    unique(&drafts, &mut problems);
    if problems.0.is_empty() {
        Ok(drafts)
    } else {
        Err(problems)
    }
}

/// Writes entries in the Markdown form [`parse_markdown`] reads.
pub fn write_markdown(entries: &[FaqDraft]) -> String {
    let mut out = String::from("# FAQ\n");
    for e in entries {
        out.push_str(&format!("\n## {}\nkey: {}\n", e.question, e.key));
        if !e.tags.is_empty() {
            out.push_str(&format!(
                "tags: {}\n",
                e.tags.to_stored().replace(',', ", ")
            ));
        }
        out.push_str(&format!("lang: {}\n", e.lang.as_str()));
        if let Some(scope) = &e.scope {
            out.push_str(&format!("scope: {scope}\n"));
        }
        for p in &e.phrasings {
            out.push_str(&format!("also: {p}\n"));
        }
        out.push('\n');
        // A line of the answer that starts a heading would start an entry when read back.
        for line in e.answer.as_str().lines() {
            if line.starts_with("## ") {
                out.push(' ');
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD: &str = "# Shop FAQ\n\n## Where is my code?\nkey: where-is-my-code\ntags: delivery, codes\nlang: en\nscope: NFX-1M\nalso: I paid but got no code\nalso: kode saya belum masuk\n\nCodes arrive in the chat.\n\nIf not, write to us.\n\n## Refunds?\nkey: refunds\n\nNo refunds on used codes.\n";

    #[test]
    fn markdown_round_trips() {
        let entries = parse_markdown(MD).expect("parses");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].phrasings.len(), 2);
        assert_eq!(
            entries[0].answer.as_str(),
            "Codes arrive in the chat.\n\nIf not, write to us."
        );
        assert_eq!(entries[0].scope.as_ref().map(Text::as_str), Some("NFX-1M"));
        assert_eq!(entries[1].lang.as_str(), "en");
        assert_eq!(
            parse_markdown(&write_markdown(&entries)).expect("again"),
            entries
        );
        assert_eq!(parse_csv(&write_csv(&entries)).expect("csv"), entries);
    }

    #[test]
    fn every_problem_is_named_by_line() {
        let bad = "## Where?\nkey: Bad Key\nnonsense\n\n\n## \nkey: x\n\nanswer\n## Dup\nkey: y\n\nA\n## Dup again\nkey: y\n\nB\n";
        let problems = parse_markdown(bad).expect_err("bad").0;
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert!(fields.contains(&"line 3"), "{problems:?}");
        assert!(fields.contains(&"line 1: key"), "{problems:?}");
        assert!(fields.contains(&"line 1: answer"), "{problems:?}");
        assert!(fields.contains(&"line 6: question"), "{problems:?}");
        assert!(fields.contains(&"key"), "{problems:?}");
        let csv = "key,question,answer\nok,Fine?,Yes\n,Missing key,Yes\n";
        let problems = parse_csv(csv).expect_err("bad").0;
        assert_eq!(problems[0].field, "line 3: key");
    }
}
