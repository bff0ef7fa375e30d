//! The attribution file of each designer (`<designer>/LICENSE.txt` in the output tree): who made
//! the artwork, its licence, what was changed; the full licence text where the licence asks for a
//! copy (MIT, Apache-2.0; the Creative Commons licences are satisfied by their URI).

use super::designers::{Designer, EMOJIBASE};

/// The MIT permission notice (without its copyright line).
const MIT_TEXT: &str = include_str!("../../emoji/licenses/MIT.txt");
/// The Apache License 2.0 terms.
const APACHE_TEXT: &str = include_str!("../../emoji/licenses/Apache-2.0.txt");

/// The licence text to include with a copy, if the licence asks for one.
fn license_text(spdx: &str, holder: &str) -> Option<String> {
    match spdx {
        "MIT" => Some(format!(
            "MIT License\n\nCopyright (c) {holder}\n\n{MIT_TEXT}"
        )),
        "Apache-2.0" => Some(APACHE_TEXT.to_string()),
        _ => None,
    }
}

/// The licence's name and deed.
fn license_deed(spdx: &str) -> (&'static str, &'static str) {
    match spdx {
        "CC-BY-4.0" => (
            "Creative Commons Attribution 4.0 International",
            "https://creativecommons.org/licenses/by/4.0/",
        ),
        "CC-BY-SA-4.0" => (
            "Creative Commons Attribution-ShareAlike 4.0 International",
            "https://creativecommons.org/licenses/by-sa/4.0/",
        ),
        "Apache-2.0" => (
            "Apache License 2.0",
            "https://www.apache.org/licenses/LICENSE-2.0",
        ),
        "MIT" => ("MIT License", "https://opensource.org/license/mit"),
        _ => ("see the package", ""),
    }
}

/// The text of `<designer>/LICENSE.txt`: what the images are, who made the artwork, its
/// licence, what was changed, and (share-alike) that the rendered images keep the licence.
pub fn attribution(d: &Designer) -> String {
    let (name, url) = license_deed(d.license);
    let mut text = format!(
        "The images in this directory ({dir}/) are rendered from the emoji artwork \"{dir}\" by {author}\n\
         ({source}), npm package {spec}.\n\n\
         Licence of the artwork: {name} ({spdx}) {url}\n\n\
         Changes: each icon was rasterized with resvg, scaled to fit a square with a margin,\n\
         centred and composited onto an opaque background (ahp-data emoji).\n",
        dir = d.name,
        author = d.author,
        source = d.url,
        spec = d.package.spec(),
        spdx = d.license,
    );
    if let Some(full) = license_text(d.license, d.author) {
        text.push_str(&format!("\n----- {} -----\n\n{full}", d.license));
    }
    if d.license.starts_with("CC-BY-SA") {
        text.push_str(&format!(
            "\nShare-alike: the rendered images are adaptations and are licensed under the same\n\
             licence, {name} ({url}), with the attribution above.\n"
        ));
    }
    text
}

/// The attribution of `captions.jsonl` (emojibase-data's labels and tags, MIT; derived from the
/// Unicode CLDR short names and keywords).
pub fn captions_attribution() -> String {
    format!(
        "captions.jsonl holds the labels and tags of {spec} (emojibase, by Miles Johnson,\n\
         https://emojibase.dev), which derive from the Unicode CLDR annotations\n\
         (Unicode License v3, https://www.unicode.org/license.txt).\n\n----- MIT -----\n\n{}",
        license_text("MIT", "2017-2019 Miles Johnson").unwrap_or_default(),
        spec = EMOJIBASE.spec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emoji::designers::designer;

    #[test]
    fn share_alike_artwork_keeps_its_licence_and_every_file_attributes() {
        let om = attribution(designer("openmoji").expect("openmoji"));
        assert!(
            om.contains("CC-BY-SA-4.0") && om.contains("Share-alike"),
            "{om}"
        );
        assert!(om.contains("openmoji@17.0.0"), "{om}");
        let tw = attribution(designer("twemoji").expect("twemoji"));
        assert!(tw.contains("Twitter") && tw.contains("CC-BY-4.0"), "{tw}");
        assert!(!tw.contains("Share-alike"));
        let fluent = attribution(designer("fluent-emoji").expect("fluent"));
        assert!(
            fluent.contains("Copyright (c) Microsoft Corporation")
                && fluent.contains("Permission is hereby granted"),
            "{fluent}"
        );
        let noto = attribution(designer("noto").expect("noto"));
        assert!(noto.contains("END OF TERMS AND CONDITIONS"), "{noto}");
        assert!(captions_attribution().contains("emojibase-data@17.0.0"));
    }
}
