//! Accounts in CSV: the import file operators bring from spreadsheets and the old app, and the
//! export they take away. Import rows are validated here, all at once, so an operator sees every
//! problem in one report.

use crate::Invalid;
use crate::account::Account;
use crate::cookies::CookieJar;
use crate::values::{Email, Phone, Tags, Text};
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;

/// Most rows one import may carry.
pub const MAX_ROWS: usize = 100_000;

/// One valid import row. `None` means the cell was empty: keep what is stored.
#[derive(Debug, Clone)]
pub struct AccountRow {
    /// The row's line number in the file (the header is line 1).
    pub line: usize,
    /// Operator's label.
    pub label: Option<Text>,
    /// Customer's name.
    pub name: Option<Text>,
    /// Sign-in email.
    pub email: Option<Email>,
    /// Sign-in phone.
    pub phone: Option<Phone>,
    /// Tags; replace the stored ones when present.
    pub tags: Option<Tags>,
    /// Active flag.
    pub active: Option<bool>,
    /// Session cookies, already normalised.
    pub cookies: Option<CookieJar>,
}

/// A problem with one row of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RowError {
    /// Line number in the file (the header is line 1).
    pub line: usize,
    /// Column the problem is in.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// A parsed import file.
#[derive(Debug, Default)]
pub struct ParsedImport {
    /// Rows that passed every check.
    pub rows: Vec<AccountRow>,
    /// Problems found, in file order.
    pub errors: Vec<RowError>,
    /// Header columns that were not recognised and so not imported.
    pub ignored_columns: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Column {
    Label,
    Name,
    Email,
    Phone,
    Tags,
    Active,
    Cookies,
}

fn column(header: &str) -> Option<Column> {
    let h = header.trim().to_ascii_lowercase().replace([' ', '-'], "_");
    Some(match h.as_str() {
        "label" => Column::Label,
        "name" | "full_name" | "customer_name" => Column::Name,
        "email" | "e_mail" => Column::Email,
        "phone" | "mobile" | "phone_number" => Column::Phone,
        "tags" | "tag" => Column::Tags,
        "active" | "is_active" | "enabled" => Column::Active,
        "cookies" | "cookie" => Column::Cookies,
        _ => return None,
    })
}

/// Parses an import file. File-level problems (not CSV, no header, no contact column, too
/// many rows) fail the whole file; row problems are collected. `cookie_domain` is the
/// storefront's host, given to cookies that name none. Emails and phones repeated inside the
/// file are reported on their second appearance.
pub fn parse(data: &[u8], cookie_domain: &str) -> Result<ParsedImport, Invalid> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(data);
    let headers = reader
        .headers()
        .map_err(|e| Invalid::new("file", format!("is not readable CSV: {e}")))?
        .clone();
    let mut out = ParsedImport::default();
    let mut columns: Vec<Option<Column>> = Vec::with_capacity(headers.len());
    let mut seen_columns = Vec::new();
    for h in headers.iter() {
        let c = column(h);
        match c {
            Some(c) if seen_columns.contains(&c) => {
                return Err(Invalid::new("file", format!("column {h:?} appears twice")));
            }
            Some(c) => seen_columns.push(c),
            None if !h.is_empty() => out.ignored_columns.push(h.to_owned()),
            None => {}
        }
        columns.push(c);
    }
    if !seen_columns.contains(&Column::Email) && !seen_columns.contains(&Column::Phone) {
        return Err(Invalid::new(
            "file",
            "needs a header row with an email or phone column (label, name, email, phone, tags, active, cookies)",
        ));
    }

    let mut records = 0usize;
    let mut emails: HashMap<Email, usize> = HashMap::new();
    let mut phones: HashMap<Phone, usize> = HashMap::new();
    for record in reader.records() {
        let record =
            record.map_err(|e| Invalid::new("file", format!("is not readable CSV: {e}")))?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        if record.iter().all(str::is_empty) {
            continue;
        }
        records += 1;
        if records > MAX_ROWS {
            return Err(Invalid::new(
                "file",
                format!("has more than {MAX_ROWS} rows"),
            ));
        }
        let mut row = AccountRow {
            line,
            label: None,
            name: None,
            email: None,
            phone: None,
            tags: None,
            active: None,
            cookies: None,
        };
        let mut errors: Vec<(&str, String)> = Vec::new();
        for (cell, col) in record.iter().zip(&columns) {
            let Some(col) = col else { continue };
            if cell.is_empty() {
                continue;
            }
            let cell = from_spreadsheet_safe(cell);
            match col {
                Column::Label => match Text::parse(cell) {
                    Ok(v) => row.label = Some(v),
                    Err(m) => errors.push(("label", m)),
                },
                Column::Name => match Text::parse(cell) {
                    Ok(v) => row.name = Some(v),
                    Err(m) => errors.push(("name", m)),
                },
                Column::Email => match Email::parse(cell) {
                    Ok(v) => row.email = Some(v),
                    Err(m) => errors.push(("email", m)),
                },
                Column::Phone => match Phone::parse(cell) {
                    Ok(v) => row.phone = Some(v),
                    Err(m) => errors.push(("phone", m)),
                },
                Column::Tags => match Tags::parse_list(cell) {
                    Ok(v) => row.tags = Some(v),
                    Err(m) => errors.push(("tags", m)),
                },
                Column::Active => match parse_flag(cell) {
                    Some(v) => row.active = Some(v),
                    None => errors.push((
                        "active",
                        format!("{cell:?} is not one of true, false, yes, no, 1, 0"),
                    )),
                },
                Column::Cookies => match CookieJar::parse(cell, cookie_domain) {
                    Ok(v) => row.cookies = Some(v),
                    Err(e) => errors.push(("cookies", e.within("cookies").to_string())),
                },
            }
        }
        if row.email.is_none() && row.phone.is_none() && errors.is_empty() {
            errors.push(("email", "an account needs an email or a phone".into()));
        }
        if let Some(email) = &row.email
            && let Some(first) = emails.insert(email.clone(), line)
        {
            errors.push(("email", format!("{email} also appears on line {first}")));
        }
        if let Some(phone) = &row.phone
            && let Some(first) = phones.insert(phone.clone(), line)
        {
            errors.push(("phone", format!("{phone} also appears on line {first}")));
        }
        if errors.is_empty() {
            out.rows.push(row);
        } else {
            out.errors
                .extend(errors.into_iter().map(|(field, message)| RowError {
                    line,
                    field: field.to_owned(),
                    message,
                }));
        }
    }
    Ok(out)
}

fn parse_flag(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "on" => Some(true),
        "false" | "no" | "n" | "0" | "off" => Some(false),
        _ => None,
    }
}

/// Where a planned import row goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Updates this existing account.
    Existing(i64),
    /// Creates a new account (the n-th new one in the plan).
    New(usize),
}

/// An import worked out against the accounts that exist: what each valid row does.
#[derive(Debug, Default)]
pub struct Plan {
    /// Accounts to create, in file order; a later row for the same account is merged in.
    pub creates: Vec<AccountRow>,
    /// Rows updating existing accounts, in file order.
    pub updates: Vec<(i64, AccountRow)>,
    /// Rows refused because their email and phone point at different accounts.
    pub errors: Vec<RowError>,
}

/// Plans an upsert: each row updates the account that has its email, else the one that has its
/// phone, else creates one. Rows are planned in order against the accounts as the rows before
/// them leave them, so a row that changes an account's email or phone frees the old value and
/// takes the new one. A row whose email and phone belong to different accounts is refused.
/// `existing` is every account of the storefront as `(id, email, phone)`.
pub fn plan(existing: Vec<(i64, Option<String>, Option<String>)>, rows: Vec<AccountRow>) -> Plan {
    let mut plan = Plan::default();
    let mut by_email: HashMap<String, Target> = HashMap::new();
    let mut by_phone: HashMap<String, Target> = HashMap::new();
    let mut current: HashMap<Target, (Option<String>, Option<String>)> = HashMap::new();
    for (id, email, phone) in existing {
        let t = Target::Existing(id);
        if let Some(e) = &email {
            by_email.insert(e.clone(), t);
        }
        if let Some(p) = &phone {
            by_phone.insert(p.clone(), t);
        }
        current.insert(t, (email, phone));
    }
    let describe = |t: Target, plan: &Plan| match t {
        Target::Existing(id) => format!("account {id}"),
        Target::New(n) => format!("the new account from line {}", plan.creates[n].line),
    };
    for row in rows {
        let email_owner = row
            .email
            .as_ref()
            .and_then(|e| by_email.get(e.as_str()).copied());
        let phone_owner = row
            .phone
            .as_ref()
            .and_then(|p| by_phone.get(p.as_str()).copied());
        if let (Some(a), Some(b)) = (email_owner, phone_owner)
            && a != b
        {
            plan.errors.push(RowError {
                line: row.line,
                field: "phone".into(),
                message: format!(
                    "belongs to {}, but the email belongs to {}",
                    describe(b, &plan),
                    describe(a, &plan)
                ),
            });
            continue;
        }
        let target = email_owner
            .or(phone_owner)
            .unwrap_or(Target::New(plan.creates.len()));
        let (old_email, old_phone) = current.get(&target).cloned().unwrap_or_default();
        let email = row
            .email
            .as_ref()
            .map(|e| e.as_str().to_owned())
            .or(old_email.clone());
        let phone = row
            .phone
            .as_ref()
            .map(|p| p.as_str().to_owned())
            .or(old_phone.clone());
        for (old, new, map) in [
            (&old_email, &email, &mut by_email),
            (&old_phone, &phone, &mut by_phone),
        ] {
            if old != new {
                if let Some(old) = old {
                    map.remove(old);
                }
                if let Some(new) = new {
                    map.insert(new.clone(), target);
                }
            }
        }
        current.insert(target, (email, phone));
        match target {
            Target::Existing(id) => plan.updates.push((id, row)),
            Target::New(n) if n == plan.creates.len() => plan.creates.push(row),
            Target::New(n) => merge(&mut plan.creates[n], row),
        }
    }
    plan
}

/// Folds a later row for the same new account into the first: its filled cells win.
fn merge(into: &mut AccountRow, row: AccountRow) {
    into.label = row.label.or(into.label.take());
    into.name = row.name.or(into.name.take());
    into.email = row.email.or(into.email.take());
    into.phone = row.phone.or(into.phone.take());
    into.tags = row.tags.or(into.tags.take());
    into.active = row.active.or(into.active);
    into.cookies = row.cookies.or(into.cookies.take());
}

/// The export's columns, in order. Cookies are never exported here.
pub const EXPORT_HEADER: [&str; 12] = [
    "id",
    "label",
    "name",
    "email",
    "phone",
    "tags",
    "active",
    "session_status",
    "points",
    "tier",
    "last_checked_at",
    "created_at",
];

/// A cell as text a spreadsheet will not run: one starting with = + - @ is a formula there,
/// so it is quoted.
pub fn spreadsheet_safe(v: &str) -> String {
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_owned()
    }
}

/// A cell as [`spreadsheet_safe`] wrote it, read back: the quote it added is dropped.
fn from_spreadsheet_safe(v: &str) -> &str {
    match v.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => v,
    }
}

/// Writes accounts as CSV (without cookies), readable back by [`parse`]. Every text cell is
/// [`spreadsheet_safe`], the storefront's tier too.
pub fn export(accounts: &[Account]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(accounts.len() * 128 + 128));
    w.write_record(EXPORT_HEADER)?;
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let cell = spreadsheet_safe;
    for a in accounts {
        w.write_record([
            a.id.to_string(),
            a.label
                .as_ref()
                .map(|v| cell(v.as_str()))
                .unwrap_or_default(),
            a.name
                .as_ref()
                .map(|v| cell(v.as_str()))
                .unwrap_or_default(),
            a.email
                .as_ref()
                .map(|v| cell(v.as_ref()))
                .unwrap_or_default(),
            a.phone
                .as_ref()
                .map(|v| cell(v.as_ref()))
                .unwrap_or_default(),
            a.tags.to_stored().replace(',', ";"),
            a.active.to_string(),
            a.session.status.as_str().to_owned(),
            a.points.map(|p| p.to_string()).unwrap_or_default(),
            a.tier.as_deref().map(cell).unwrap_or_default(),
            a.last_checked_at.map(rfc3339).unwrap_or_default(),
            rfc3339(a.created_at),
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_rows_and_every_error() {
        let file = "Name,Email,Mobile,Tags,Active,Points\n\
                    Riya,riya@example.com,98765 43210,\"vip;north\",yes,120\n\
                    Bad,not-an-email,123,,maybe,\n\
                    ,,,,,\n\
                    Dup,RIYA@example.com,,,,\n\
                    NoContact,,,,,\n\
                    \"Multi\nLine\",m@example.com,,,0,\n";
        let parsed = parse(file.as_bytes(), "shop.test").unwrap();
        assert_eq!(parsed.ignored_columns, ["Points"]);
        let lines: Vec<_> = parsed.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2]);
        let errors: Vec<_> = parsed
            .errors
            .iter()
            .map(|e| (e.line, e.field.as_str()))
            .collect();
        assert_eq!(
            errors,
            [
                (3, "email"),
                (3, "phone"),
                (3, "active"),
                (5, "email"),
                (6, "email"),
                (7, "name")
            ]
        );
        assert!(parsed.errors[3].message.contains("line 2"));
        let riya = &parsed.rows[0];
        assert_eq!(riya.phone.as_ref().unwrap().as_str(), "9876543210");
        assert_eq!(riya.tags.as_ref().unwrap().to_stored(), "north,vip");
        assert_eq!(riya.active, Some(true));
    }

    #[test]
    fn cookies_column_is_normalised() {
        let file = "email,cookies\na@example.com,\"[{\"\"name\"\":\"\"f.session\"\",\"\"value\"\":\"\"s%3Ax\"\"}]\"\nb@example.com,nonsense\n";
        let parsed = parse(file.as_bytes(), "shop.test").unwrap();
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(
            parsed.rows[0].cookies.as_ref().unwrap().cookies()[0].domain,
            "shop.test"
        );
        assert_eq!(parsed.errors[0].field, "cookies");
    }

    fn row(line: usize, email: Option<&str>, phone: Option<&str>) -> AccountRow {
        AccountRow {
            line,
            label: None,
            name: None,
            email: email.map(|e| Email::parse(e).unwrap()),
            phone: phone.map(|p| Phone::parse(p).unwrap()),
            tags: None,
            active: None,
            cookies: None,
        }
    }

    #[test]
    fn plans_follow_changes_made_by_earlier_rows() {
        let existing = vec![(5, Some("a@x.com".into()), Some("9000000001".into()))];
        // Row 2 moves account 5 to b@x.com; row 3 then uses a@x.com, now free: a new account.
        let p = plan(
            existing.clone(),
            vec![
                row(2, Some("b@x.com"), Some("9000000001")),
                row(3, Some("a@x.com"), Some("9000000002")),
            ],
        );
        assert!(p.errors.is_empty());
        assert_eq!(
            p.updates
                .iter()
                .map(|(id, r)| (*id, r.line))
                .collect::<Vec<_>>(),
            [(5, 2)]
        );
        assert_eq!(p.creates.iter().map(|r| r.line).collect::<Vec<_>>(), [3]);
        // The old phone of a changed account is free too.
        let p = plan(
            existing.clone(),
            vec![
                row(2, Some("a@x.com"), Some("9000000009")),
                row(3, None, Some("9000000001")),
            ],
        );
        assert!(p.errors.is_empty());
        assert_eq!(p.creates.len(), 1);
        // Email and phone of two different accounts: refused.
        let two = vec![
            (5, Some("a@x.com".into()), None),
            (6, None, Some("9000000002".into())),
        ];
        let p = plan(two, vec![row(2, Some("a@x.com"), Some("9000000002"))]);
        assert_eq!(p.errors[0].field, "phone");
        assert!(
            p.errors[0].message.contains("account 6") && p.errors[0].message.contains("account 5")
        );
        // A later row for an account created earlier in the same plan merges into it.
        let p = plan(
            vec![],
            vec![
                row(2, Some("n@x.com"), None),
                row(3, Some("n@x.com"), Some("9000000003")),
            ],
        );
        assert_eq!(p.creates.len(), 1);
        assert_eq!(p.creates[0].phone.as_ref().unwrap().as_str(), "9000000003");
    }

    #[test]
    fn file_level_problems() {
        assert_eq!(
            parse(b"name,points\nx,1\n", "s.test").unwrap_err().field,
            "file"
        );
        assert!(parse(b"email,Email\n", "s.test").is_err());
        assert!(parse(b"", "s.test").is_err());
    }
}
