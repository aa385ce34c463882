//! `[[profiles]]`: names, script paths and templates.

use toml::Spanned;

use crate::config::error::Rejection;
use crate::config::file::FileProfile;
use crate::config::model::{Profile, ProfileScript};
use crate::config::values::check_name;
use crate::template::Template;
use crate::tftp::{DEFAULT_MAX_PATH_LEN, normalize_path};

/// Converts every profile. Names are unique; a script comes from exactly
/// one of `template` and `template-file`; its path (default `NAME.ipxe`)
/// is a TFTP path as a client would request it.
pub(super) fn convert(files: &[FileProfile]) -> Result<Vec<Profile>, Rejection> {
    let mut out: Vec<Profile> = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        let key = format!("profiles[{i}]");
        let profile = convert_one(file, &key)?;
        if let Some(j) = out.iter().position(|o| o.name == profile.name) {
            return Err(Rejection::new(
                Some(file.name.span()),
                format!("{key}.name"),
                format!("`{}` is already profiles[{j}]", profile.name),
            ));
        }
        out.push(profile);
    }
    Ok(out)
}

fn convert_one(file: &FileProfile, key: &str) -> Result<Profile, Rejection> {
    let name = file.name.get_ref().clone();
    check_name(&name)
        .map_err(|m| Rejection::new(Some(file.name.span()), format!("{key}.name"), m))?;
    let template = match (&file.template, &file.template_file) {
        (Some(_), Some(path)) => {
            return Err(Rejection::new(
                Some(path.span()),
                format!("{key}.template-file"),
                "give either `template` or `template-file`, not both",
            ));
        }
        (Some(inline), None) => Some((inline_template(inline, key)?, None)),
        (None, Some(path)) => Some((file_template(file, path, key)?, Some(path.get_ref().into()))),
        (None, None) => None,
    };
    let Some((template, template_file)) = template else {
        if let Some(script) = &file.script {
            return Err(Rejection::new(
                Some(script.span()),
                format!("{key}.script"),
                "a script needs `template` or `template-file`",
            ));
        }
        return Ok(Profile { name, script: None });
    };
    let path = match &file.script {
        None => format!("{name}.ipxe"),
        Some(script) => script_path(script, &format!("{key}.script"))?,
    };
    Ok(Profile {
        name,
        script: Some(ProfileScript {
            path,
            template,
            template_file,
        }),
    })
}

fn inline_template(value: &Spanned<String>, key: &str) -> Result<Template, Rejection> {
    Template::parse(value.get_ref())
        .map_err(|e| Rejection::new(Some(value.span()), format!("{key}.template"), e.to_string()))
}

fn file_template(
    file: &FileProfile,
    path: &Spanned<String>,
    key: &str,
) -> Result<Template, Rejection> {
    let fail = |m: String| Rejection::new(Some(path.span()), format!("{key}.template-file"), m);
    let shown = path.get_ref();
    match &file.loaded {
        Some(Ok(text)) => Template::parse(text).map_err(|e| fail(format!("{shown}: {e}"))),
        Some(Err(why)) => Err(fail(format!("cannot read {shown}: {why}"))),
        None => Err(fail(format!("{shown} was not read"))),
    }
}

/// The normalised TFTP path of `value`; refused when a client could not
/// request it (empty, `..`, control characters, too long).
fn script_path(value: &Spanned<String>, key: &str) -> Result<String, Rejection> {
    let mut out = String::new();
    normalize_path(value.get_ref().as_bytes(), DEFAULT_MAX_PATH_LEN, &mut out)
        .map_err(|e| {
            Rejection::new(
                Some(value.span()),
                key,
                format!("`{}` is not a TFTP path: {e}", value.get_ref()),
            )
        })
        .map(str::to_owned)
}
