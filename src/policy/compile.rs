//! Checking a policy against a schema and turning it into ready-to-run operators.
//!
//! Everything that can be checked before data is touched is checked here: that every named
//! column exists, that each operator supports its column's type, that parameters are in range,
//! that named keys exist, and (for `default: deny`) that no column is left uncovered. Errors
//! name the column and the field.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::model::{self, DefaultAction, Policy, Rule, Separators};
use crate::detect::recognizers::builtin_entities;
use crate::detect::redact::{DEFAULT_TEMPLATE, FPE_ENTITIES};
use crate::detect::{Detector, EntityAction, Recognizer, RedactEntities};
use crate::error::{Error, Result};
use crate::keys::KeyProvider;
use crate::mask::date_shift::{self, DateShift};
use crate::mask::fpe::{FormatPreserving, DIGITS};
use crate::mask::generalize::{
    self, default_edge_labels, BucketOutput, DatePart, Generalization, Generalize,
};
use crate::mask::hash::{self, DigestEncoding, KeyedHash};
use crate::mask::noise::{self, Distribution, Noise};
use crate::mask::partial::{PartialMask, DEFAULT_SEPARATORS};
use crate::mask::redact::{Keep, Nullify, Redact, DEFAULT_REDACTION};
use crate::mask::strings::is_string_type;
use crate::mask::tokenize::{Direction, Tokenizer};
use crate::mask::ColumnOperator;

/// A `redact_entities` rule, checked: its detector, the entities it replaces and the nested
/// per-entity rules.
struct RedactionPlan {
    detector: Arc<Detector>,
    entities: Vec<String>,
    template: String,
    operators: Vec<(String, Rule)>,
}

/// The detector for the built-in recognizers plus `recognizers` (shared when there are none),
/// keeping findings that score at least `min_score`.
pub fn build_detector(
    recognizers: &[model::RecognizerSpec],
    min_score: Option<f64>,
) -> Result<Arc<Detector>> {
    let custom = recognizers
        .iter()
        .map(|spec| {
            let context: Vec<&str> = spec.context.iter().flatten().map(String::as_str).collect();
            Recognizer::custom(
                &spec.entity,
                &spec.pattern,
                spec.validator.as_deref(),
                &context,
                spec.score.unwrap_or(0.8),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    if custom.is_empty() && min_score.is_none() {
        return Detector::builtin_shared();
    }
    let detector = Detector::with_custom(custom)?;
    Ok(Arc::new(match min_score {
        Some(min) => detector.with_min_score(min)?,
        None => detector,
    }))
}

fn redaction_plan(column: &str, rule: &Rule) -> Result<RedactionPlan> {
    let Rule::RedactEntities {
        entities,
        replacement,
        operators,
        recognizers,
        min_score,
    } = rule
    else {
        return Err(Error::policy_field(
            column,
            "op",
            "not a redact_entities rule",
        ));
    };
    let detector = build_detector(recognizers.as_deref().unwrap_or_default(), *min_score).map_err(
        |e| match e {
            Error::Recognizer { .. } => e,
            other => Error::policy_field(column, "min_score", other.to_string()),
        },
    )?;
    let known = |name: &str, field: &str| -> Result<()> {
        if detector.entity_index(name).is_some() {
            Ok(())
        } else {
            Err(Error::policy_field(
                column,
                field,
                format!(
                    "unknown entity '{name}'; known entities: {} (add a recognizer for others)",
                    detector.entities().join(", ")
                ),
            ))
        }
    };
    let entities = match entities {
        Some(names) => {
            for name in names {
                known(name, "entities")?;
            }
            names.clone()
        }
        None => detector.entities().to_vec(),
    };
    let mut nested = Vec::new();
    for (entity, nested_rule) in operators.iter().flatten() {
        known(entity, "operators")?;
        match nested_rule {
            Rule::Redact { .. } | Rule::Mask { .. } | Rule::Hash { .. } | Rule::Tokenize { .. } => {}
            Rule::Fpe { decrypt, .. } => {
                if decrypt.unwrap_or(false) {
                    return Err(Error::policy_field(column, "operators", "fpe inside redact_entities only encrypts"));
                }
                if builtin_entities().contains(&entity.as_str()) && !FPE_ENTITIES.contains(&entity.as_str()) {
                    return Err(Error::policy_field(
                        column,
                        "operators",
                        format!(
                            "fpe keeps the format of digit entities ({}); use mask, hash or tokenize for {entity}",
                            FPE_ENTITIES.join(", ")
                        ),
                    ));
                }
            }
            other => {
                return Err(Error::policy_field(
                    column,
                    "operators",
                    format!(
                        "operator '{}' cannot replace a finding inside text; use redact, mask, hash, tokenize or fpe",
                        other.op_name()
                    ),
                ))
            }
        }
        nested.push((entity.clone(), nested_rule.clone()));
    }
    Ok(RedactionPlan {
        detector,
        entities,
        template: replacement
            .clone()
            .unwrap_or_else(|| DEFAULT_TEMPLATE.to_owned()),
        operators: nested,
    })
}

/// A string operator that also works inside text (on one finding at a time).
enum StringTransform {
    Mask(PartialMask),
    Hash(KeyedHash),
    Tokenize(Tokenizer),
    Fpe(Box<FormatPreserving>),
}

impl StringTransform {
    fn into_operator(self) -> Arc<dyn ColumnOperator> {
        match self {
            StringTransform::Mask(op) => Arc::new(op),
            StringTransform::Hash(op) => Arc::new(op),
            StringTransform::Tokenize(op) => Arc::new(op),
            StringTransform::Fpe(op) => Arc::new(*op),
        }
    }
}

/// Build `mask`, `hash`, `tokenize`/`detokenize` or `fpe` from a checked rule; `None` for other
/// operators. Parameter errors name `error_field`, or the parameter itself when it is `None`.
fn string_transform(
    column: &str,
    rule: &Rule,
    keys: &dyn KeyProvider,
    error_field: Option<&'static str>,
) -> Result<Option<StringTransform>> {
    let in_field = |own_field: &'static str| {
        move |e: Error| match e {
            Error::Policy { message, .. } => {
                Error::policy_field(column, error_field.unwrap_or(own_field), message)
            }
            other => other,
        }
    };
    Ok(Some(match rule {
        Rule::Mask {
            keep_first,
            keep_last,
            mask_char,
            keep_email_domain,
            ..
        } => StringTransform::Mask(PartialMask::new(
            keep_first.unwrap_or(0),
            keep_last.unwrap_or(0),
            mask_char.unwrap_or('*'),
            &separators(column, rule)?,
            keep_email_domain.unwrap_or(false),
        )),
        Rule::Hash {
            key,
            encoding,
            truncate_bytes,
        } => StringTransform::Hash(
            KeyedHash::new(
                &keys.key(key)?,
                match encoding {
                    Some(model::Encoding::Base64url) => DigestEncoding::Base64Url,
                    _ => DigestEncoding::Hex,
                },
                *truncate_bytes,
            )
            .map_err(in_field("truncate_bytes"))?,
        ),
        Rule::Tokenize { key, tweak } | Rule::Detokenize { key, tweak } => {
            let direction = if matches!(rule, Rule::Tokenize { .. }) {
                Direction::Tokenize
            } else {
                Direction::Detokenize
            };
            StringTransform::Tokenize(Tokenizer::new(
                &keys.key(key)?,
                tweak.as_deref().unwrap_or(""),
                direction,
            ))
        }
        Rule::Fpe {
            key,
            alphabet,
            tweak,
            decrypt,
        } => StringTransform::Fpe(Box::new(
            FormatPreserving::new(
                &keys.key(key)?,
                alphabet.as_deref().unwrap_or(DIGITS),
                tweak.as_deref().unwrap_or(""),
                decrypt.unwrap_or(false),
            )
            .map_err(in_field("alphabet"))?,
        )),
        _ => return Ok(None),
    }))
}

/// The action that replaces one entity's findings, from a nested rule already checked.
fn entity_action(
    column: &str,
    rule: &Rule,
    template: &str,
    keys: &dyn KeyProvider,
) -> Result<EntityAction> {
    if let Rule::Redact { replacement } = rule {
        return Ok(EntityAction::Label(
            replacement.clone().unwrap_or_else(|| template.to_owned()),
        ));
    }
    let inside_text = match rule {
        Rule::Detokenize { .. } => None,
        _ => string_transform(column, rule, keys, Some("operators"))?,
    };
    Ok(match inside_text {
        Some(StringTransform::Mask(op)) => EntityAction::Mask(op),
        Some(StringTransform::Hash(op)) => EntityAction::Hash(op),
        Some(StringTransform::Tokenize(op)) => EntityAction::Tokenize(op),
        Some(StringTransform::Fpe(op)) => EntityAction::Fpe(*op),
        None => {
            return Err(Error::policy_field(
                column,
                "operators",
                format!(
                    "operator '{}' cannot replace a finding inside text",
                    rule.op_name()
                ),
            ))
        }
    })
}

/// A policy bound to one input schema, with keys resolved: ready to apply.
pub struct CompiledPolicy {
    pub(crate) input_schema: SchemaRef,
    pub(crate) output_schema: SchemaRef,
    /// One operator per input column, in schema order (`Keep` for untouched columns).
    pub(crate) operators: Vec<Arc<dyn ColumnOperator>>,
    fingerprint: String,
}

impl std::fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("fingerprint", &self.fingerprint)
            .field("output_schema", &self.output_schema)
            .finish_non_exhaustive()
    }
}

impl CompiledPolicy {
    /// The schema of the masked output.
    pub fn output_schema(&self) -> SchemaRef {
        Arc::clone(&self.output_schema)
    }
    /// The schema this policy was compiled for.
    pub fn input_schema(&self) -> SchemaRef {
        Arc::clone(&self.input_schema)
    }
    /// Fingerprint of the source policy.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

impl Policy {
    /// Check the policy against `schema` without touching data. With `keys`, also check that
    /// every named key exists.
    pub fn validate(&self, schema: &Schema, keys: Option<&dyn KeyProvider>) -> Result<()> {
        for (column, rule) in &self.columns {
            let field = find_field(schema, column)?;
            check_rule(column, rule, field, schema)?;
            if let Some(keys) = keys {
                for reference in rule.key_references() {
                    keys.key(reference)?;
                }
            }
        }
        check_default(self, schema)
    }

    /// Check the policy against `schema` and build its operators with keys from `keys`.
    pub fn compile(&self, schema: SchemaRef, keys: &dyn KeyProvider) -> Result<CompiledPolicy> {
        self.validate(&schema, None)?;
        let mut operators: Vec<Arc<dyn ColumnOperator>> = Vec::with_capacity(schema.fields().len());
        let mut fields = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let operator: Arc<dyn ColumnOperator> = match self.columns.get(field.name()) {
                Some(rule) => build_operator(field.name(), rule, field, keys)?,
                None => Arc::new(Keep),
            };
            let output_type = operator.output_type(field.data_type());
            let nullable = field.is_nullable() || operator.introduces_nulls();
            fields.push(
                Field::new(field.name(), output_type, nullable)
                    .with_metadata(field.metadata().clone()),
            );
            operators.push(operator);
        }
        let output_schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        Ok(CompiledPolicy {
            input_schema: schema,
            output_schema,
            operators,
            fingerprint: self.fingerprint(),
        })
    }
}

fn find_field<'a>(schema: &'a Schema, column: &str) -> Result<&'a Field> {
    schema
        .field_with_name(column)
        .map_err(|_| Error::ColumnNotFound {
            column: column.to_owned(),
            available: column_list(schema),
        })
}

fn column_list(schema: &Schema) -> String {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn check_default(policy: &Policy, schema: &Schema) -> Result<()> {
    if policy.default == DefaultAction::Deny {
        if let Some(field) = schema
            .fields()
            .iter()
            .find(|f| !policy.columns.contains_key(f.name()))
        {
            return Err(Error::ColumnDenied {
                column: field.name().clone(),
            });
        }
    }
    Ok(())
}

fn with_key_field(err: Error, column: &str) -> Error {
    match err {
        Error::Keyring { message } => Error::policy_field(column, "key", message),
        other => other,
    }
}

/// Operators that accept a column of `data_type`, for error hints.
fn operators_for(data_type: &DataType) -> &'static str {
    if is_string_type(data_type) {
        "keep, nullify, redact, mask, hash, tokenize, detokenize, fpe, generalize (prefix), redact_entities"
    } else if data_type.is_integer() {
        "keep, nullify, hash, generalize (width/edges), noise"
    } else if data_type.is_floating() {
        "keep, nullify, generalize (width/edges), noise"
    } else if date_shift::supports_type(data_type) {
        "keep, nullify, generalize (to), date_shift"
    } else {
        "keep, nullify (cast the column to a supported type for other operators)"
    }
}

fn type_error(column: &str, op: &str, data_type: &DataType) -> Error {
    Error::ColumnType {
        column: column.to_owned(),
        op: op.to_owned(),
        data_type: data_type.to_string(),
        hint: format!("operators for {data_type}: {}", operators_for(data_type)),
    }
}

fn generalization(column: &str, rule: &Rule, data_type: &DataType) -> Result<Generalization> {
    let Rule::Generalize {
        width,
        edges,
        labels,
        output,
        to,
        prefix,
        pad,
    } = rule
    else {
        return Err(Error::policy_field(column, "op", "not a generalize rule"));
    };
    let modes = [
        width.is_some(),
        edges.is_some(),
        to.is_some(),
        prefix.is_some(),
    ];
    if modes.iter().filter(|m| **m).count() != 1 {
        return Err(Error::policy_field(
            column,
            "width",
            "give exactly one of 'width', 'edges' (numbers), 'to' (dates) or 'prefix' (strings)",
        ));
    }
    if labels.is_some() && edges.is_none() {
        return Err(Error::policy_field(
            column,
            "labels",
            "'labels' goes with 'edges'",
        ));
    }
    if output.is_some() && width.is_none() {
        return Err(Error::policy_field(
            column,
            "output",
            "'output' goes with 'width'",
        ));
    }
    if pad.is_some() && prefix.is_none() {
        return Err(Error::policy_field(
            column,
            "pad",
            "'pad' goes with 'prefix'",
        ));
    }
    if let Some(width) = width {
        if !(width.is_finite() && *width > 0.0) {
            return Err(Error::policy_field(
                column,
                "width",
                "must be a positive number",
            ));
        }
        if data_type.is_integer() && (width.fract() != 0.0 || *width < 1.0) {
            return Err(Error::policy_field(
                column,
                "width",
                "must be a whole number for an integer column",
            ));
        }
        return Ok(Generalization::Width {
            width: *width,
            output: match output {
                Some(model::BucketOutput::Floor) => BucketOutput::Floor,
                _ => BucketOutput::Label,
            },
        });
    }
    if let Some(edges) = edges {
        if edges.is_empty() || edges.iter().any(|e| !e.is_finite()) {
            return Err(Error::policy_field(
                column,
                "edges",
                "give one or more finite numbers",
            ));
        }
        if edges.windows(2).any(|pair| pair[0] >= pair[1]) {
            return Err(Error::policy_field(
                column,
                "edges",
                "must be strictly ascending",
            ));
        }
        let labels = match labels {
            Some(labels) if labels.len() != edges.len() + 1 => {
                return Err(Error::policy_field(
                    column,
                    "labels",
                    format!(
                        "{} edges make {} buckets (below the first edge, between edges, from the last edge up); give {} labels",
                        edges.len(),
                        edges.len() + 1,
                        edges.len() + 1
                    ),
                ))
            }
            Some(labels) => labels.clone(),
            None => default_edge_labels(edges),
        };
        return Ok(Generalization::Edges {
            edges: edges.clone(),
            labels,
        });
    }
    if let Some(to) = to {
        return Ok(Generalization::Truncate(match to {
            model::DatePart::Year => DatePart::Year,
            model::DatePart::Month => DatePart::Month,
            model::DatePart::Day => DatePart::Day,
        }));
    }
    let chars = prefix.unwrap_or_default();
    Ok(Generalization::Prefix { chars, pad: *pad })
}

struct NoiseParameters {
    distribution: Distribution,
    scale: f64,
    clip: Option<(f64, f64)>,
    seed: Option<u64>,
}

fn noise_parameters(column: &str, rule: &Rule) -> Result<NoiseParameters> {
    let Rule::Noise {
        distribution,
        scale,
        epsilon,
        sensitivity,
        delta,
        seed,
        clip,
    } = rule
    else {
        return Err(Error::policy_field(column, "op", "not a noise rule"));
    };
    let distribution = match distribution {
        Some(model::NoiseDistribution::Gaussian) => Distribution::Gaussian,
        _ => Distribution::Laplace,
    };
    let positive = |value: f64, field: &str| -> Result<f64> {
        if value.is_finite() && value > 0.0 {
            Ok(value)
        } else {
            Err(Error::policy_field(
                column,
                field,
                "must be a positive number",
            ))
        }
    };
    let scale = match (scale, epsilon, sensitivity) {
        (Some(scale), None, None) => positive(*scale, "scale")?,
        (None, Some(epsilon), Some(sensitivity)) => {
            let epsilon = positive(*epsilon, "epsilon")?;
            let sensitivity = positive(*sensitivity, "sensitivity")?;
            match distribution {
                Distribution::Laplace => {
                    if delta.is_some() {
                        return Err(Error::policy_field(
                            column,
                            "delta",
                            "'delta' goes with the gaussian distribution",
                        ));
                    }
                    sensitivity / epsilon
                }
                Distribution::Gaussian => {
                    let delta = delta.filter(|d| *d > 0.0 && *d < 1.0).ok_or_else(|| {
                        Error::policy_field(
                            column,
                            "delta",
                            "gaussian noise from epsilon needs 0 < delta < 1",
                        )
                    })?;
                    sensitivity * (2.0 * (1.25 / delta).ln()).sqrt() / epsilon
                }
            }
        }
        _ => {
            return Err(Error::policy_field(
                column,
                "scale",
                "give either 'scale', or 'epsilon' with 'sensitivity'",
            ))
        }
    };
    if let Some((low, high)) = clip {
        if !(low.is_finite() && high.is_finite() && low <= high) {
            return Err(Error::policy_field(
                column,
                "clip",
                "must be [low, high] with low <= high",
            ));
        }
    }
    Ok(NoiseParameters {
        distribution,
        scale,
        clip: *clip,
        seed: *seed,
    })
}

fn separators(column: &str, rule: &Rule) -> Result<String> {
    let Rule::Mask {
        keep_separators,
        mask_char,
        ..
    } = rule
    else {
        return Ok(String::new());
    };
    let chars = match keep_separators {
        None | Some(Separators::Default(false)) => String::new(),
        Some(Separators::Default(true)) => DEFAULT_SEPARATORS.to_owned(),
        Some(Separators::Chars(chars)) => chars.clone(),
    };
    if let Some(mask_char) = mask_char {
        if chars.contains(*mask_char) {
            return Err(Error::policy_field(
                column,
                "mask_char",
                "the mask character cannot also be a separator",
            ));
        }
    }
    Ok(chars)
}

/// Check one rule's parameters and its column's type; no keys needed.
fn check_rule(column: &str, rule: &Rule, field: &Field, schema: &Schema) -> Result<()> {
    let data_type = field.data_type();
    let op = rule.op_name();
    let supported = match rule {
        Rule::Keep {} | Rule::Nullify {} => true,
        Rule::Redact { .. } | Rule::Tokenize { .. } | Rule::Detokenize { .. } => {
            is_string_type(data_type)
        }
        Rule::Mask { .. } => {
            separators(column, rule)?;
            is_string_type(data_type)
        }
        Rule::Fpe { alphabet, .. } => {
            if let Some(alphabet) = alphabet {
                let mut seen = std::collections::HashSet::new();
                if alphabet.chars().count() < 2 || !alphabet.chars().all(|c| seen.insert(c)) {
                    return Err(Error::policy_field(
                        column,
                        "alphabet",
                        "needs at least 2 distinct characters, none repeated",
                    ));
                }
            }
            is_string_type(data_type)
        }
        Rule::Hash { truncate_bytes, .. } => {
            if let Some(bytes) = truncate_bytes {
                if !(hash::MIN_TRUNCATE_BYTES..=32).contains(bytes) {
                    return Err(Error::policy_field(
                        column,
                        "truncate_bytes",
                        format!("must be between {} and 32", hash::MIN_TRUNCATE_BYTES),
                    ));
                }
            }
            hash::supports_type(data_type)
        }
        Rule::Generalize { .. } => {
            let how = generalization(column, rule, data_type)?;
            generalize::supports_type(&how, data_type)
        }
        Rule::DateShift {
            max_days, subject, ..
        } => {
            if !(1..=36_500).contains(max_days) {
                return Err(Error::policy_field(
                    column,
                    "max_days",
                    "must be between 1 and 36500",
                ));
            }
            if subject == column {
                return Err(Error::policy_field(
                    column,
                    "subject",
                    "the subject must be another column (e.g. a patient id)",
                ));
            }
            let subject_field = find_field(schema, subject)?;
            if !date_shift::supports_subject_type(subject_field.data_type()) {
                return Err(Error::policy_field(
                    column,
                    "subject",
                    format!(
                        "subject column '{subject}' has type {}; use a string or integer id column",
                        subject_field.data_type()
                    ),
                ));
            }
            date_shift::supports_type(data_type)
        }
        Rule::Noise { .. } => {
            noise_parameters(column, rule)?;
            noise::supports_type(data_type)
        }
        Rule::RedactEntities { .. } => {
            let plan = redaction_plan(column, rule)?;
            for (_, nested) in &plan.operators {
                check_rule(column, nested, field, schema)?;
            }
            is_string_type(data_type)
        }
    };
    for reference in rule.key_references() {
        crate::keys::parse_key_reference(reference).map_err(|e| with_key_field(e, column))?;
    }
    if supported {
        Ok(())
    } else {
        Err(type_error(column, op, data_type))
    }
}

fn build_operator(
    column: &str,
    rule: &Rule,
    field: &Field,
    keys: &dyn KeyProvider,
) -> Result<Arc<dyn ColumnOperator>> {
    let key = |reference: &str| keys.key(reference);
    let in_field = |field_name: &'static str| {
        move |e: Error| match e {
            Error::Policy { message, .. } => Error::policy_field(column, field_name, message),
            other => other,
        }
    };
    Ok(match rule {
        Rule::Keep {} => Arc::new(Keep),
        Rule::Nullify {} => Arc::new(Nullify),
        Rule::Redact { replacement } => Arc::new(Redact::new(
            replacement.as_deref().unwrap_or(DEFAULT_REDACTION),
        )),
        Rule::Generalize { .. } => Arc::new(Generalize::new(generalization(
            column,
            rule,
            field.data_type(),
        )?)),
        Rule::DateShift {
            key: reference,
            max_days,
            subject,
        } => Arc::new(
            DateShift::new(&key(reference)?, *max_days, subject).map_err(in_field("max_days"))?,
        ),
        Rule::RedactEntities { .. } => {
            let plan = redaction_plan(column, rule)?;
            let mut overrides = Vec::with_capacity(plan.operators.len());
            for (entity, nested) in &plan.operators {
                overrides.push((
                    entity.clone(),
                    entity_action(column, nested, &plan.template, keys)?,
                ));
            }
            let entities: Vec<&str> = plan.entities.iter().map(String::as_str).collect();
            Arc::new(
                RedactEntities::new(plan.detector, &entities, &plan.template, overrides)
                    .map_err(in_field("entities"))?,
            )
        }
        Rule::Noise { .. } => {
            let p = noise_parameters(column, rule)?;
            Arc::new(
                Noise::new(p.distribution, p.scale, p.clip, p.seed, column)
                    .map_err(in_field("scale"))?,
            )
        }
        Rule::Mask { .. }
        | Rule::Hash { .. }
        | Rule::Tokenize { .. }
        | Rule::Detokenize { .. }
        | Rule::Fpe { .. } => string_transform(column, rule, keys, None)?
            .map(StringTransform::into_operator)
            .ok_or_else(|| Error::policy_field(column, "op", "not a string operator"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::LocalKeyring;
    use crate::parallel::RunControl;
    use arrow_array::cast::AsArray;
    use arrow_array::{Array, RecordBatch, StringArray};

    fn note_batch(notes: Vec<Option<&str>>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("note", DataType::Utf8, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(notes))]).unwrap()
    }

    fn keyring() -> (tempfile::TempDir, LocalKeyring) {
        let dir = tempfile::tempdir().unwrap();
        let keyring = LocalKeyring::open(dir.path()).unwrap();
        keyring.ensure_key("pseudo").unwrap();
        (dir, keyring)
    }

    fn policy_error(text: &str, schema: &Schema) -> Error {
        let policy = Policy::from_json(text).unwrap();
        policy.validate(schema, None).unwrap_err()
    }

    #[test]
    fn redact_entities_applies_labels_and_nested_operators() {
        let (_dir, keys) = keyring();
        let batch = note_batch(vec![
            Some("Zoë: zoë@example.com, card 4111 1111 1111 1111, EMP-123456, +44 20 7946 0018"),
            None,
        ]);
        let policy = Policy::from_json(
            r#"{"columns": {"note": {"op": "redact_entities",
                "entities": ["EMAIL", "PHONE", "CREDIT_CARD", "EMPLOYEE_ID"], "with": "<{entity}>",
                "operators": {"CREDIT_CARD": {"op": "mask", "keep_last": 4, "keep_separators": true},
                              "EMAIL": {"op": "hash", "key": "pseudo", "truncate_bytes": 8}},
                "recognizers": [{"entity": "EMPLOYEE_ID", "pattern": "EMP-[0-9]{6}", "context": ["employee"]}]}}}"#,
        )
        .unwrap();
        assert_eq!(Policy::from_json(&policy.to_json()).unwrap(), policy);
        let compiled = policy.compile(batch.schema(), &keys).unwrap();
        let out = compiled
            .apply_batches(&[batch], 0, &RunControl::new())
            .unwrap();
        let notes = out[0].column(0).as_string::<i32>();
        let pseudonym = KeyedHash::new(&keys.key("pseudo").unwrap(), DigestEncoding::Hex, Some(8))
            .unwrap()
            .pseudonym("zoë@example.com".as_bytes());
        assert_eq!(
            notes.value(0),
            format!("Zoë: {pseudonym}, card **** **** **** 1111, <EMPLOYEE_ID>, <PHONE>")
        );
        assert!(notes.is_null(1));
    }

    #[test]
    fn redact_entities_defaults_to_every_entity() {
        let (_dir, keys) = keyring();
        let batch = note_batch(vec![Some("ssn 123-45-6789 from 10.0.0.1")]);
        let policy =
            Policy::from_json(r#"{"columns": {"note": {"op": "redact_entities"}}}"#).unwrap();
        let out = policy
            .compile(batch.schema(), &keys)
            .unwrap()
            .apply_batches(&[batch], 0, &RunControl::new())
            .unwrap();
        assert_eq!(
            out[0].column(0).as_string::<i32>().value(0),
            "ssn <US_SSN> from <IPV4>"
        );
    }

    #[test]
    fn redact_entities_errors_name_column_field_or_recognizer() {
        let schema = note_batch(vec![]).schema();
        let field_of = |text: &str| match policy_error(text, &schema) {
            Error::Policy { column, field, .. } => (column, field),
            other => panic!("{text}: {other}"),
        };
        let cases = [
            (
                r#"{"columns": {"note": {"op": "redact_entities", "entities": ["PERSON"]}}}"#,
                "entities",
            ),
            (
                r#"{"columns": {"note": {"op": "redact_entities", "operators": {"NOPE": {"op": "redact"}}}}}"#,
                "operators",
            ),
            (
                r#"{"columns": {"note": {"op": "redact_entities", "operators": {"EMAIL": {"op": "noise", "scale": 1}}}}}"#,
                "operators",
            ),
            (
                r#"{"columns": {"note": {"op": "redact_entities", "operators": {"EMAIL": {"op": "fpe", "key": "k"}}}}}"#,
                "operators",
            ),
            (
                r#"{"columns": {"note": {"op": "redact_entities", "min_score": 2}}}"#,
                "min_score",
            ),
            (
                r#"{"columns": {"note": {"op": "redact_entities", "operators": {"EMAIL": {"op": "hash", "key": "k", "truncate_bytes": 2}}}}}"#,
                "truncate_bytes",
            ),
        ];
        for (text, field) in cases {
            assert_eq!(
                field_of(text),
                (Some("note".into()), Some(field.into())),
                "{text}"
            );
        }
        let bad_regex = r#"{"columns": {"note": {"op": "redact_entities", "recognizers": [{"entity": "ORDER_ID", "pattern": "ORD-("}]}}}"#;
        match policy_error(bad_regex, &schema) {
            Error::Recognizer { name, .. } => assert_eq!(name, "ORDER_ID"),
            other => panic!("{other}"),
        }
        let typed = Arc::new(Schema::new(vec![Field::new("note", DataType::Int64, true)]));
        let err = policy_error(
            r#"{"columns": {"note": {"op": "redact_entities"}}}"#,
            &typed,
        );
        assert!(matches!(err, Error::ColumnType { .. }), "{err}");
        let (_dir, keys) = keyring();
        let missing_key = Policy::from_json(
            r#"{"columns": {"note": {"op": "redact_entities", "operators": {"EMAIL": {"op": "hash", "key": "absent"}}}}}"#,
        )
        .unwrap();
        assert!(matches!(
            missing_key.validate(&schema, Some(&keys)),
            Err(Error::KeyNotFound { .. })
        ));
    }
}
