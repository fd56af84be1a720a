//! External key material: the Parquet key tools' `_KEY_MATERIAL_FOR_<file>.json` beside a
//! file, and its re-wrapping under new master key versions without touching the data file.
//!
//! The `parquet-key-management` crate implements only key material stored inside the file, so
//! the store is kept here, in the layout pyarrow and parquet-java write: a JSON object from
//! key reference (`footerKey`, `columnKey0`, `columnKey1`, ...) to the key material as a JSON
//! string, with each module's key metadata reduced to
//! `{"keyMaterialType":"PKMT1","internalStorage":false,"keyReference":"<reference>"}`.
//! Unwrapping goes through the crate's [`KeyUnwrapper`]; re-wrapping a data key under a fresh
//! key encryption key is AES-128-GCM (ring) with the key tools' layout and AAD.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use indexmap::IndexMap;
use parquet::encryption::decrypt::KeyRetriever;
use parquet::encryption::encrypt::{EncryptionPropertiesBuilder, FileEncryptionProperties};
use parquet_key_management::encryption_keys::FileEncryptionKeys;
use parquet_key_management::key_material::KeyMaterial;
use parquet_key_management::key_unwrapper::KeyUnwrapper;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, NONCE_LEN};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::kms::{AmlguardKms, KmsCalls, MasterKeys};
use crate::error::{Error, Result};
use crate::io::atomic::AtomicFile;
use crate::io::location::Location;

/// Prefix of the key material file's name, as the key tools write it.
pub const KEY_MATERIAL_PREFIX: &str = "_KEY_MATERIAL_FOR_";

/// Reference of the footer key's material in the store.
const FOOTER_KEY_REFERENCE: &str = "footerKey";

/// The key tools' key length (data keys and key encryption keys).
const KEY_BYTES: usize = 16;

/// The key material file beside `data_file`: `_KEY_MATERIAL_FOR_<file name>.json`.
pub fn key_material_path(data_file: &Path) -> PathBuf {
    let name = data_file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    data_file.with_file_name(format!("{KEY_MATERIAL_PREFIX}{name}.json"))
}

fn material_error(path: &Path, message: impl Into<String>) -> Error {
    Error::ParquetKeyMaterial {
        source_name: path.display().to_string(),
        message: message.into(),
    }
}

/// The key metadata a module carries when its material lives in the store.
fn reference_metadata(reference: &str) -> Vec<u8> {
    let mut object = Map::new();
    object.insert("keyMaterialType".into(), "PKMT1".into());
    object.insert("internalStorage".into(), false.into());
    object.insert("keyReference".into(), reference.into());
    Value::Object(object).to_string().into_bytes()
}

/// Key material as the key tools store it externally: their field order, no storage fields,
/// no nulls.
fn stored_material(material: &KeyMaterial) -> String {
    let mut object = Map::new();
    object.insert("keyMaterialType".into(), "PKMT1".into());
    object.insert("isFooterKey".into(), material.is_footer_key.into());
    if let Some(id) = &material.kms_instance_id {
        object.insert("kmsInstanceID".into(), id.clone().into());
    }
    if let Some(url) = &material.kms_instance_url {
        object.insert("kmsInstanceURL".into(), url.clone().into());
    }
    object.insert("masterKeyID".into(), material.master_key_id.clone().into());
    object.insert("wrappedDEK".into(), material.wrapped_dek.clone().into());
    object.insert("doubleWrapping".into(), material.double_wrapping.into());
    if let Some(id) = &material.key_encryption_key_id {
        object.insert("keyEncryptionKeyID".into(), id.clone().into());
    }
    if let Some(wrapped) = &material.wrapped_kek {
        object.insert("wrappedKEK".into(), wrapped.clone().into());
    }
    Value::Object(object).to_string()
}

/// Parse a stored key material string into the crate's type (marked internal, which is what
/// the crate's unwrapper accepts: the material is now in hand).
fn parse_stored(text: &str) -> std::result::Result<KeyMaterial, String> {
    let mut value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| "a key material entry is not a JSON object".to_owned())?;
    object.insert("internalStorage".into(), true.into());
    object.remove("keyReference");
    KeyMaterial::deserialize(&value.to_string()).map_err(|e| e.to_string())
}

fn internal_metadata(material: &KeyMaterial) -> Result<Vec<u8>> {
    material
        .serialize()
        .map(String::into_bytes)
        .map_err(|e| Error::invalid_data(None, format!("Parquet encryption: {e}")))
}

/// Key reference -> stored key material, in file order.
type Entries = IndexMap<String, String>;

fn read_store(path: &Path) -> Result<Entries> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(material_error(
                path,
                "the key material file is missing; the data file's keys are wrapped in it, so it must stay beside the file (and be copied with it)",
            ))
        }
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| material_error(path, format!("not a key material file: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| material_error(path, "not a key material file: not a JSON object"))?;
    object
        .iter()
        .map(|(reference, material)| {
            material
                .as_str()
                .map(|m| (reference.clone(), m.to_owned()))
                .ok_or_else(|| {
                    material_error(
                        path,
                        format!("the key material of '{reference}' is not a JSON string"),
                    )
                })
        })
        .collect()
}

/// A key material file written to a temporary file beside its destination, moved into place
/// by [`PendingStore::commit`].
pub(crate) struct PendingStore(AtomicFile);

impl PendingStore {
    fn create(path: &Path, entries: &Entries) -> Result<Self> {
        let mut file = AtomicFile::create(path)?;
        let text = serde_json::to_string(entries).map_err(|e| {
            Error::invalid_data(None, format!("cannot encode the key material: {e}"))
        })?;
        std::io::Write::write_all(file.file_mut(), text.as_bytes())
            .map_err(|e| Error::io("writing", path, e))?;
        Ok(Self(file))
    }

    pub(crate) fn commit(self) -> Result<()> {
        self.0.commit().map(|_| ())
    }
}

/// Move the key material of `keys` into a store for `data_file`: the returned builder carries
/// only key references, the store is moved into place by the caller once the data file is
/// complete.
pub(crate) fn externalize(
    keys: FileEncryptionKeys,
    data_file: &Path,
) -> Result<(EncryptionPropertiesBuilder, PendingStore)> {
    let mut entries = Entries::new();
    let mut keep = |reference: String, metadata: &[u8]| -> Result<Vec<u8>> {
        let text = std::str::from_utf8(metadata)
            .map_err(|e| Error::invalid_data(None, format!("Parquet key metadata: {e}")))?;
        let material = KeyMaterial::deserialize(text)
            .map_err(|e| Error::invalid_data(None, format!("Parquet key metadata: {e}")))?;
        entries.insert(reference.clone(), stored_material(&material));
        Ok(reference_metadata(&reference))
    };
    let footer = keys.footer_key();
    let footer_metadata = keep(FOOTER_KEY_REFERENCE.to_owned(), footer.metadata())?;
    let mut builder = FileEncryptionProperties::builder(footer.key().to_vec())
        .with_footer_key_metadata(footer_metadata)
        .with_plaintext_footer(keys.plaintext_footer());
    for (index, (column, key)) in keys.column_keys().enumerate() {
        let metadata = keep(format!("columnKey{index}"), key.metadata())?;
        builder = builder.with_column_key_and_metadata(column, key.key().to_vec(), metadata);
    }
    let store = PendingStore::create(&key_material_path(data_file), &entries)?;
    Ok((builder, store))
}

/// Finds each module's key: through the external store when its metadata is a key reference,
/// directly otherwise; unwrapping is the key tools' own.
pub(crate) struct MaterialRetriever {
    unwrapper: KeyUnwrapper,
    store_path: Option<PathBuf>,
    store: Mutex<Option<Entries>>,
    first_error: Mutex<Option<Error>>,
}

impl MaterialRetriever {
    /// `data_file` is `None` for files that have no local path (blobs): a key reference there
    /// is refused.
    pub(crate) fn new(unwrapper: KeyUnwrapper, data_file: Option<&Path>) -> Self {
        Self {
            unwrapper,
            store_path: data_file.map(key_material_path),
            store: Mutex::new(None),
            first_error: Mutex::new(None),
        }
    }

    /// The first error of ours met while retrieving keys.
    pub(crate) fn take_error(&self) -> Option<Error> {
        self.first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn referenced_material(&self, reference: &str) -> Result<KeyMaterial> {
        let Some(path) = &self.store_path else {
            return Err(Error::ParquetKeyMaterial {
                source_name: "the Parquet file".into(),
                message: "its key material is external (a _KEY_MATERIAL_FOR_ file), which amlguard reads only beside local files".into(),
            });
        };
        let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if store.is_none() {
            *store = Some(read_store(path)?);
        }
        let entries = store.as_ref().map(|s| s.get(reference)).unwrap_or_default();
        let text = entries.ok_or_else(|| {
            material_error(path, format!("holds no key material for '{reference}'"))
        })?;
        parse_stored(text)
            .map_err(|e| material_error(path, format!("the key material of '{reference}': {e}")))
    }

    fn retrieve(&self, key_metadata: &[u8]) -> Result<Option<Vec<u8>>> {
        let reference = serde_json::from_slice::<Value>(key_metadata)
            .ok()
            .filter(|v| v.get("internalStorage") == Some(&Value::Bool(false)))
            .and_then(|v| {
                v.get("keyReference")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
        match reference {
            Some(reference) => {
                let material = self.referenced_material(&reference)?;
                Ok(Some(internal_metadata(&material)?))
            }
            None => Ok(None),
        }
    }
}

impl KeyRetriever for MaterialRetriever {
    fn retrieve_key(&self, key_metadata: &[u8]) -> parquet::errors::Result<Vec<u8>> {
        let internal = match self.retrieve(key_metadata) {
            Ok(found) => found,
            Err(error) => {
                let message = error.to_string();
                let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert(error);
                return Err(parquet::errors::ParquetError::General(message));
            }
        };
        self.unwrapper
            .unwrap_key(internal.as_deref().unwrap_or(key_metadata))
            .map_err(|e| parquet::errors::ParquetError::General(e.to_string()))
    }
}

/// What [`rotate_parquet_keys`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeyRotationReport {
    /// The key material file rewritten.
    pub key_material_path: PathBuf,
    /// Data keys re-wrapped (the footer's and each encrypted column's).
    pub keys_rewrapped: u64,
    /// Key-provider calls made (unwrapping the old material, wrapping the new).
    pub kms_calls: KmsCalls,
    /// Wall time.
    pub elapsed_seconds: f64,
}

fn random_key() -> Result<Zeroizing<[u8; KEY_BYTES]>> {
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    getrandom::getrandom(key.as_mut_slice()).map_err(|e| Error::RandomSource {
        message: e.to_string(),
    })?;
    Ok(key)
}

/// Wrap a data key under a key encryption key as the key tools do: base64 of nonce,
/// AES-GCM ciphertext and tag, with the KEK id as AAD.
fn wrap_with_kek(dek: &[u8], kek: &[u8], kek_id: &[u8]) -> Result<String> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce).map_err(|e| Error::RandomSource {
        message: e.to_string(),
    })?;
    seal_under_kek(dek, kek, kek_id, nonce)
}

fn seal_under_kek(dek: &[u8], kek: &[u8], kek_id: &[u8], nonce: [u8; NONCE_LEN]) -> Result<String> {
    let key = UnboundKey::new(&AES_128_GCM, kek)
        .map_err(|_| Error::invalid_data(None, "a key encryption key is not 128 bits"))?;
    let key = LessSafeKey::new(key);
    let mut sealed = Vec::with_capacity(NONCE_LEN + dek.len() + AES_128_GCM.tag_len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(dek);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(kek_id),
            &mut sealed[NONCE_LEN..],
        )
        .map_err(|_| Error::invalid_data(None, "cannot wrap a data key"))?;
    sealed.extend_from_slice(tag.as_ref());
    Ok(BASE64.encode(sealed))
}

/// A fresh key encryption key for one master key: its id (base64) and its wrapped form.
struct NewKek {
    key: Zeroizing<[u8; KEY_BYTES]>,
    id: [u8; KEY_BYTES],
    wrapped: String,
}

/// Re-wrap the external key material of the Parquet file at `source` under the latest version
/// of each master key, leaving the data file untouched. The key material file is replaced
/// atomically (temp + rename).
pub fn rotate_parquet_keys(
    source: &Location,
    keys: Arc<dyn MasterKeys>,
    double_wrapping: bool,
) -> Result<KeyRotationReport> {
    let started = Instant::now();
    let Location::Local(data_file) = source else {
        return Err(Error::InvalidArgument {
            name: "path",
            message: "key rotation without a rewrite needs external key material, which amlguard keeps only beside local files".into(),
        });
    };
    std::fs::metadata(data_file).map_err(|e| Error::io("opening", data_file, e))?;
    let store_path = key_material_path(data_file);
    if !store_path.exists() {
        return Err(material_error(
            data_file,
            format!(
                "keeps its key material inside the file (there is no {} beside it), so re-wrapping it under new master key versions needs a rewrite: read_parquet, then write_parquet with external_key_material=True",
                store_path.file_name().unwrap_or_default().to_string_lossy()
            ),
        ));
    }
    let entries = read_store(&store_path)?;
    let kms = Arc::new(AmlguardKms::new(keys));
    let unwrapper = super::file::crypto_factory(&kms)
        .key_unwrapper(Default::default(), Default::default())
        .map_err(super::file::from_key_tools)?;
    let mut keks: HashMap<String, NewKek> = HashMap::new();
    let mut rotated = Entries::new();
    for (reference, text) in &entries {
        let material = parse_stored(text).map_err(|e| {
            material_error(
                &store_path,
                format!("the key material of '{reference}': {e}"),
            )
        })?;
        let dek = Zeroizing::new(
            unwrapper
                .unwrap_key(&internal_metadata(&material)?)
                .map_err(|e| {
                    kms.take_error()
                        .unwrap_or_else(|| super::file::from_key_tools(e))
                })?,
        );
        let master = material.master_key_id.clone();
        let new_material = if double_wrapping {
            if !keks.contains_key(&master) {
                let key = random_key()?;
                let id = *random_key()?;
                let wrapped = kms.wrap(key.as_slice(), &master)?;
                keks.insert(master.clone(), NewKek { key, id, wrapped });
            }
            let kek = &keks[&master];
            KeyMaterial {
                wrapped_dek: wrap_with_kek(&dek, kek.key.as_slice(), &kek.id)?,
                double_wrapping: true,
                key_encryption_key_id: Some(BASE64.encode(kek.id)),
                wrapped_kek: Some(kek.wrapped.clone()),
                ..material
            }
        } else {
            KeyMaterial {
                wrapped_dek: kms.wrap(&dek, &master)?,
                double_wrapping: false,
                key_encryption_key_id: None,
                wrapped_kek: None,
                ..material
            }
        };
        rotated.insert(reference.clone(), stored_material(&new_material));
    }
    PendingStore::create(&store_path, &rotated)?.commit()?;
    Ok(KeyRotationReport {
        key_material_path: store_path,
        keys_rewrapped: rotated.len() as u64,
        kms_calls: kms.calls(),
        elapsed_seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_key_is_sealed_as_aes_gcm_nonce_ciphertext_tag() {
        // AES-128-GCM test case 2 of McGrew and Viega, "The Galois/Counter Mode of Operation":
        // zero key, zero IV, one zero block, no AAD.
        let sealed = seal_under_kek(&[0u8; 16], &[0u8; 16], b"", [0u8; NONCE_LEN]).unwrap();
        let bytes = BASE64.decode(sealed).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            concat!(
                "000000000000000000000000",
                "0388dace60b6a392f328c2b971b2fe78",
                "ab6e47d42cec13bdf53a67b21257bddf"
            )
        );
    }

    #[test]
    fn the_key_material_file_sits_beside_the_data_file() {
        assert_eq!(
            key_material_path(Path::new("/data/part-0.parquet")),
            Path::new("/data/_KEY_MATERIAL_FOR_part-0.parquet.json")
        );
    }
}
