//! Recognizers: a pattern, an optional validator, context words and a base score per entity.
//!
//! [`builtin`] lists the recognizers amlguard ships, in priority order: when two patterns match
//! at the same position, the earlier one is tried first (secrets before URLs, dates before phone
//! numbers, ...). [`Recognizer::custom`] builds a user's recognizer and checks its pattern and
//! validator name at once, so a bad one is a typed error that names it, before any data is read.
//!
//! Patterns are regular expressions in the syntax of the `regex` crate, compiled together into
//! one automaton by [`super::Detector`]. Built-in patterns use ASCII classes and ASCII word
//! boundaries (`(?-u:\b)`), which keep the automaton small and fully DFA-friendly.
//!
//! ```
//! use amlguard::detect::{Detector, Recognizer};
//! let employee = Recognizer::custom("EMPLOYEE_ID", r"EMP-[0-9]{6}", None, &["employee"], 0.8).unwrap();
//! assert!(Recognizer::custom("BROKEN", r"(unclosed", None, &[], 0.8).is_err());
//! let detector = Detector::new(vec![employee]).unwrap();
//! assert_eq!(detector.find("employee EMP-123456").len(), 1);
//! ```

use super::validators::{self, Validator};
use crate::error::{Error, Result};

/// E-mail addresses.
pub const EMAIL: &str = "EMAIL";
/// Phone numbers (E.164 and US, UK, DE, FR, IN national formats).
pub const PHONE: &str = "PHONE";
/// Payment card numbers.
pub const CREDIT_CARD: &str = "CREDIT_CARD";
/// US social security numbers.
pub const US_SSN: &str = "US_SSN";
/// International bank account numbers.
pub const IBAN: &str = "IBAN";
/// IPv4 addresses.
pub const IPV4: &str = "IPV4";
/// IPv6 addresses.
pub const IPV6: &str = "IPV6";
/// URLs (scheme, host and path; the query string is left to the secret recognizers).
pub const URL: &str = "URL";
/// Calendar dates.
pub const DATE: &str = "DATE";
/// Azure storage account keys and connection strings.
pub const AZURE_STORAGE_KEY: &str = "AZURE_STORAGE_KEY";
/// Azure shared access signature query strings.
pub const AZURE_SAS_TOKEN: &str = "AZURE_SAS_TOKEN";
/// JSON web tokens.
pub const JWT: &str = "JWT";
/// PEM private key blocks.
pub const PEM_PRIVATE_KEY: &str = "PEM_PRIVATE_KEY";
/// AWS access key ids.
pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// High-entropy values after words such as key, token or secret.
pub const API_KEY: &str = "API_KEY";

/// Entities that are credentials: redacted outright, never pseudonymised.
pub const SECRET_ENTITIES: &[&str] = &[
    AZURE_STORAGE_KEY,
    AZURE_SAS_TOKEN,
    JWT,
    PEM_PRIVATE_KEY,
    AWS_ACCESS_KEY_ID,
    API_KEY,
];

/// One recognizer. Build built-ins with [`builtin`] and user recognizers with
/// [`Recognizer::custom`].
#[derive(Clone, Debug, PartialEq)]
pub struct Recognizer {
    /// The entity it reports (`EMAIL`, `EMPLOYEE_ID`, ...).
    pub entity: String,
    /// Regular expression for candidates.
    pub pattern: String,
    /// Check run on each candidate, if any.
    pub validator: Option<Validator>,
    /// Words (lower case) that raise the score when found shortly before a match.
    pub context: Vec<String>,
    /// Score of a validated match with no context word (0..=1).
    pub score: f64,
    /// Whether this recognizer gives way to a more specific one that matches its accepted
    /// span exactly (the generic API-key recognizer defers to JWT, AWS, ...).
    pub(crate) defers: bool,
    /// Built-in recognizers only match text the engine's pre-filter lets through.
    pub(crate) builtin: bool,
}

impl Recognizer {
    /// A user recognizer: `pattern` in `regex` syntax, an optional validator by name (see
    /// [`Validator::from_name`]), context words and a base score in `0..=1`. The pattern is
    /// compiled here, so an invalid one is an [`Error::Recognizer`] naming `entity`.
    pub fn custom(
        entity: &str,
        pattern: &str,
        validator: Option<&str>,
        context: &[&str],
        score: f64,
    ) -> Result<Self> {
        let invalid = |message: String| Error::Recognizer {
            name: entity.to_owned(),
            message,
        };
        if entity.is_empty()
            || !entity
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(invalid(
                "an entity name uses letters, digits and '_' only (e.g. EMPLOYEE_ID)".into(),
            ));
        }
        if !(score.is_finite() && (0.0..=1.0).contains(&score)) {
            return Err(invalid("score must be between 0 and 1".into()));
        }
        let validator = match validator {
            None => None,
            Some(name) => Some(Validator::from_name(name).ok_or_else(|| {
                invalid(format!(
                    "unknown validator '{name}'; use one of: {}",
                    Validator::names()
                ))
            })?),
        };
        super::engine::compile_patterns(&[pattern]).map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            entity: entity.to_owned(),
            pattern: pattern.to_owned(),
            validator,
            context: context.iter().map(|w| w.to_lowercase()).collect(),
            score,
            defers: false,
            builtin: false,
        })
    }

    fn builtin(
        entity: &str,
        pattern: &str,
        validator: Option<Validator>,
        context: &[&str],
        score: f64,
    ) -> Self {
        Self {
            entity: entity.to_owned(),
            pattern: pattern.to_owned(),
            validator,
            context: context.iter().map(|w| (*w).to_owned()).collect(),
            score,
            defers: false,
            builtin: false,
        }
    }
}

/// One character of an e-mail's local part.
pub(crate) const EMAIL_LOCAL_CHAR: &str = r"[\p{L}\p{N}._%+-]";
/// An e-mail from its `@` on: the domain (ASCII labels, an alphabetic top-level label).
pub(crate) const EMAIL_FROM_AT: &str =
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}(?-u:\b)";

/// The built-in recognizers, in priority order.
pub fn builtin() -> Vec<Recognizer> {
    let month_names = validators::month_alternation();
    let date = format!(
        r"(?-u:\b)(?:[0-9]{{4}}[-/.][0-9]{{1,2}}[-/.][0-9]{{1,2}}|[0-9]{{1,2}}[-/.][0-9]{{1,2}}[-/.][0-9]{{4}}|[0-9]{{1,2}} (?i-u:{month_names})\.?,? [0-9]{{4}}|(?i-u:{month_names})\.? [0-9]{{1,2}}(?:st|nd|rd|th)?,? [0-9]{{4}})(?-u:\b)"
    );
    let secret_words = &["key", "token", "secret", "password", "credential", "sig"];
    let mut recognizers = vec![
        Recognizer::builtin(
            PEM_PRIVATE_KEY,
            r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----[A-Za-z0-9+/=\r\n \t:,-]*?-----END (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----",
            Some(Validator::Pem),
            &[],
            0.95,
        ),
        Recognizer::builtin(
            AZURE_STORAGE_KEY,
            r"(?:DefaultEndpointsProtocol=https?;)?(?:AccountName=[a-z0-9]{3,24};)?AccountKey=[A-Za-z0-9+/]{86}==",
            Some(Validator::AzureStorageKey),
            &["storage", "connection"],
            0.95,
        ),
        Recognizer::builtin(
            AZURE_SAS_TOKEN,
            r"(?-u:\b)[a-z]{2,6}=[A-Za-z0-9%+/=:._~-]*(?:&[a-z]{2,6}=[A-Za-z0-9%+/=:._~-]*)+",
            Some(Validator::SasToken),
            &["sas", "signature", "blob", "storage"],
            0.9,
        ),
        Recognizer::builtin(
            JWT,
            r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
            Some(Validator::Jwt),
            &["bearer", "token", "jwt", "authorization"],
            0.9,
        ),
        Recognizer::builtin(
            AWS_ACCESS_KEY_ID,
            r"(?-u:\b)(?:AKIA|ASIA)[A-Z0-9]{16}(?-u:\b)",
            None,
            &["aws", "access", "key"],
            0.9,
        ),
        Recognizer {
            defers: true,
            ..Recognizer::builtin(
                API_KEY,
                r#"(?i-u:api[_-]?key|apikey|secret|token|password|passwd|pwd|access[_-]?key|client[_-]?secret|auth[_-]?key)[A-Za-z_-]{0,16}["']?(?:[ \t]{0,3}[:=]|[ \t]+is)[ \t]{0,3}["']?[A-Za-z0-9_+/=.~-]{16,}"#,
                Some(Validator::ApiKey),
                secret_words,
                0.8,
            )
        },
        Recognizer::builtin(
            URL,
            r#"(?i-u:https?://|ftp://|www\.)[^\s<>"'?#]+"#,
            Some(Validator::Url),
            &["url", "link", "website", "visit"],
            0.6,
        ),
        Recognizer::builtin(
            EMAIL,
            &format!("{EMAIL_LOCAL_CHAR}+{EMAIL_FROM_AT}"),
            Some(Validator::Email),
            &["email", "e-mail", "mail", "contact", "reach"],
            0.9,
        ),
        Recognizer::builtin(
            IBAN,
            r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?-u:\b)",
            Some(Validator::Mod97),
            &["iban", "account", "bank", "transfer"],
            0.95,
        ),
        Recognizer::builtin(
            DATE,
            &date,
            Some(Validator::Date),
            &["date", "born", "birth", "dob", "visit", "appointment"],
            0.6,
        ),
        Recognizer::builtin(
            IPV4,
            r"(?-u:\b)(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?-u:\b)",
            Some(Validator::Ipv4),
            &["ip", "address", "host", "server", "login", "from"],
            0.8,
        ),
        Recognizer::builtin(
            IPV6,
            r"[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]{1,37}",
            Some(Validator::Ipv6),
            &["ip", "address", "host", "server", "ipv6"],
            0.8,
        ),
        Recognizer::builtin(
            US_SSN,
            r"(?-u:\b)(?:[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4}|[0-9]{9})(?-u:\b)",
            Some(Validator::Ssn),
            &["ssn", "social security", "ss#", "ssa"],
            0.85,
        ),
        Recognizer::builtin(
            CREDIT_CARD,
            r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,18}(?-u:\b)",
            Some(Validator::CreditCard),
            &[
                "card",
                "visa",
                "mastercard",
                "amex",
                "credit",
                "debit",
                "payment",
            ],
            0.95,
        ),
        Recognizer::builtin(
            PHONE,
            r"(?:(?:\+[1-9][0-9]{0,2}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?|\([0-9]{2,5}\)[ .-]?)[0-9]{1,5}(?:[ ./-]?[0-9]{1,8}){0,6}|(?-u:\b)[0-9]{1,5}(?:[ ./-]?[0-9]{1,8}){0,5}[ ./-][0-9]{1,8})(?-u:\b)",
            Some(Validator::Phone),
            &[
                "phone", "call", "tel", "mobile", "cell", "fax", "contact", "whatsapp",
            ],
            0.65,
        ),
    ];
    for r in &mut recognizers {
        r.builtin = true;
    }
    recognizers
}

/// The entities of the built-in recognizers, in priority order.
pub fn builtin_entities() -> Vec<&'static str> {
    vec![
        PEM_PRIVATE_KEY,
        AZURE_STORAGE_KEY,
        AZURE_SAS_TOKEN,
        JWT,
        AWS_ACCESS_KEY_ID,
        API_KEY,
        URL,
        EMAIL,
        IBAN,
        DATE,
        IPV4,
        IPV6,
        US_SSN,
        CREDIT_CARD,
        PHONE,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_entities_match_builtin_recognizers() {
        let names: Vec<String> = builtin().into_iter().map(|r| r.entity).collect();
        assert_eq!(names, builtin_entities());
    }

    #[test]
    fn phone_candidates_need_a_country_code_an_area_in_parentheses_or_a_separator() {
        let phone = builtin().into_iter().find(|r| r.entity == PHONE).unwrap();
        let regex = super::super::engine::compile_patterns(&[phone.pattern.as_str()]).unwrap();
        let whole = |text: &str| {
            regex
                .find(text)
                .is_some_and(|m| m.start() == 0 && m.end() == text.len())
        };
        for number in [
            "+14155552671",
            "+44 20 7946 0018",
            "+1 (415) 555-2671",
            "(020) 79460018",
            "(201) 555-0123",
            "020 7946 0018",
            "201.555.0123",
            "98765 43210",
            "030/1234567",
        ] {
            assert!(whole(number), "{number}");
        }
        // A bare digit run is never a phone number to the validator: no candidate, so counts,
        // order numbers and the pieces of version strings cost no validation.
        for text in [
            "869916",
            "3",
            "2024",
            "4155552671",
            "order 869916 shipped",
            "in 3 weeks",
        ] {
            assert!(regex.find(text).is_none(), "{text}");
        }
        assert!(whole("2.15.7"), "dotted numbers stay candidates");
    }

    #[test]
    fn custom_recognizer_errors_name_it() {
        let err = Recognizer::custom("BAD_ONE", "(a", None, &[], 0.5).unwrap_err();
        assert!(
            matches!(&err, Error::Recognizer { name, .. } if name == "BAD_ONE"),
            "{err}"
        );
        assert!(err.to_string().contains("BAD_ONE"));
        let err = Recognizer::custom("X", "a", Some("crc32"), &[], 0.5).unwrap_err();
        assert!(err.to_string().contains("crc32"), "{err}");
        assert!(Recognizer::custom("X", "a", None, &[], 1.5).is_err());
        assert!(Recognizer::custom("has space", "a", None, &[], 0.5).is_err());
        let ok = Recognizer::custom("X", "a", Some("luhn"), &["Word"], 0.5).unwrap();
        assert_eq!(ok.context, vec!["word"]);
    }
}
