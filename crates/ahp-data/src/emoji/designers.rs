//! The pinned npm packages and the designers drawn from them.
//!
//! Every package is pinned by version and by the registry's `sha512` integrity (the `integrity`
//! field of `npm view NAME@VERSION dist.integrity`), so a fetch either gives these exact bytes or
//! fails. The benchmark designers are never used to pretrain the embedded CLIP.

/// One pinned npm package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Package {
    /// npm name, e.g. `@iconify-json/twemoji`.
    pub name: &'static str,
    /// Exact version.
    pub version: &'static str,
    /// The registry's integrity string (`sha512-<base64>`).
    pub integrity: &'static str,
}

impl Package {
    /// `name@version`, the spec given to `npm pack`.
    pub fn spec(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// The tarball's file name as `npm pack` writes it (`@scope/name` → `scope-name`).
    pub fn tarball_name(&self) -> String {
        format!("{}-{}.tgz", self.dir_name(), self.version)
    }

    /// The package's name as a directory name (`@iconify-json/noto` → `iconify-json-noto`).
    pub fn dir_name(&self) -> String {
        self.name.trim_start_matches('@').replace('/', "-")
    }
}

/// How a designer's artwork is stored in its package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artwork {
    /// An Iconify icon set: `package/icons.json` (+ `package/info.json` for the licence).
    Iconify,
    /// One SVG document per codepoint, `package/<dir>/<HEX>.svg` (OpenMoji).
    SvgDir(&'static str),
}

/// What a designer is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Pretraining of the embedded CLIP only.
    Pretraining,
    /// The leave-one-designer-out benchmark (never seen in pretraining).
    Benchmark,
}

/// One designer: a style of emoji artwork from one package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Designer {
    /// Domain name (the directory under the output root).
    pub name: &'static str,
    /// The package holding the artwork.
    pub package: Package,
    /// Where in the package.
    pub artwork: Artwork,
    /// Pretraining or benchmark.
    pub role: Role,
    /// Who made it, for the attribution.
    pub author: &'static str,
    /// The artwork's licence (SPDX).
    pub license: &'static str,
    /// Where the artwork comes from.
    pub url: &'static str,
}

const fn iconify(name: &'static str, version: &'static str, integrity: &'static str) -> Package {
    Package {
        name,
        version,
        integrity,
    }
}

/// OpenMoji's own package: colour and black line-art SVGs per codepoint.
pub const OPENMOJI: Package = Package {
    name: "openmoji",
    version: "17.0.0",
    integrity: "sha512-EBnYrNGdcdw+OSXmENeNE1yBNRu6tOraTmoOyUbJkTmvT/+XETp8RZLSJFzD3lrPc5N9CzsyPnRTk0Vp4UaI9w==",
};

/// Labels and tags of every emoji (MIT), the join key being the codepoint.
pub const EMOJIBASE: Package = Package {
    name: "emojibase-data",
    version: "17.0.0",
    integrity: "sha512-Yvgb5AWoHViHV/gq1qr5ZAarcBip+B27/ZLRsUJkbgAEaLlZ/fof9g882LTpmEpyhBNEC0m2SEmItljHsTygjA==",
};

/// The codepoint tables (`chars.json`) that name-only sets are joined through.
pub const NAME_TABLES: [Package; 4] = [
    iconify("@iconify-json/twemoji", "1.2.5", "sha512-uKpuIEV0v6K5BW3Mjdyl+XKFVAbbcPxAgifKvEMtZoUZB5+YiY5zaMm2uNNCxyXzAWU9yNLlj41WU6/mvgALsw=="),
    iconify("@iconify-json/noto", "1.2.9", "sha512-DQiuXENbun41ch+XPSV55H9FaWKpHTyz46YIKtSaKYD4fIDDzL1tR6H4np/T38jfrTAeI3rcKF0mqHYeZVAuaw=="),
    iconify("@iconify-json/openmoji", "1.2.29", "sha512-vXdhkqcXVSO6suy+m9LbcUM3OdVyuNOtpV8/als/WqfkQIRxevL5Geb/g+6GH/Qwnq1OqksEmaDGTCmZ5nFKJQ=="),
    iconify("@iconify-json/fluent-emoji-flat", "1.2.6", "sha512-RY47RgPb47fYUiyrA64sIOL0+UU02s29sXpNBbIQRBUlPlfNFTKUmZDERGuxDs/7yNGWqQYvuaSYM1M4fRXlUw=="),
];

/// Every designer, pretraining first.
pub const DESIGNERS: [Designer; 11] = [
    Designer {
        name: "twemoji",
        package: NAME_TABLES[0],
        artwork: Artwork::Iconify,
        role: Role::Pretraining,
        author: "Twitter, Inc and other contributors",
        license: "CC-BY-4.0",
        url: "https://github.com/jdecked/twemoji",
    },
    Designer {
        name: "noto",
        package: NAME_TABLES[1],
        artwork: Artwork::Iconify,
        role: Role::Pretraining,
        author: "Google Inc",
        license: "Apache-2.0",
        url: "https://github.com/googlefonts/noto-emoji",
    },
    Designer {
        name: "noto-v1",
        package: iconify("@iconify-json/noto-v1", "1.2.5", "sha512-/DsVMius69Q0fRS53z7QK1TROSuar606jiIx+laXtdsYGMXpf6LtHBx6CGfoo3UHHb/XpBsw+1L1x3eyPqMuVA=="),
        artwork: Artwork::Iconify,
        role: Role::Pretraining,
        author: "Google Inc",
        license: "Apache-2.0",
        url: "https://github.com/googlefonts/noto-emoji",
    },
    Designer {
        name: "fluent-emoji",
        package: iconify("@iconify-json/fluent-emoji", "1.2.7", "sha512-D8G6bKAyIsyxP1rzZtIWr/gg/fO4Rg1+DyCWlfqKK4h8W+4Em/Y0P6QYgJUQTlUcagzJvSyg+9OBv4hz4Hc/QA=="),
        artwork: Artwork::Iconify,
        role: Role::Pretraining,
        author: "Microsoft Corporation",
        license: "MIT",
        url: "https://github.com/microsoft/fluentui-emoji",
    },
    Designer {
        name: "fluent-emoji-flat",
        package: NAME_TABLES[3],
        artwork: Artwork::Iconify,
        role: Role::Pretraining,
        author: "Microsoft Corporation",
        license: "MIT",
        url: "https://github.com/microsoft/fluentui-emoji",
    },
    Designer {
        name: "fxemoji",
        package: iconify("@iconify-json/fxemoji", "1.2.2", "sha512-UAasRaxzFUKfIGSmLwnoarsssA4LX0VLLuEmplIqM6ZNQqIQRtav8tZ4H1neTlBreXuMQyAifr5jP4kn78DpiQ=="),
        artwork: Artwork::Iconify,
        role: Role::Pretraining,
        author: "Mozilla",
        license: "Apache-2.0",
        url: "https://github.com/mozilla/fxemoji",
    },
    Designer {
        name: "openmoji",
        package: OPENMOJI,
        artwork: Artwork::SvgDir("color/svg"),
        role: Role::Benchmark,
        author: "OpenMoji (HfG Schwäbisch Gmünd) and contributors",
        license: "CC-BY-SA-4.0",
        url: "https://openmoji.org/",
    },
    Designer {
        name: "openmoji-black",
        package: OPENMOJI,
        artwork: Artwork::SvgDir("black/svg"),
        role: Role::Benchmark,
        author: "OpenMoji (HfG Schwäbisch Gmünd) and contributors",
        license: "CC-BY-SA-4.0",
        url: "https://openmoji.org/",
    },
    Designer {
        name: "emojione",
        package: iconify("@iconify-json/emojione", "1.2.3", "sha512-T9+T3HIbJNLKKsmxYKlaYhvnHYkz/HNYTV7SHCXVZPfeUi4FqskY70YeN8yYAZT8cCv7w5vJxS4Q1m8zb9CMMg=="),
        artwork: Artwork::Iconify,
        role: Role::Benchmark,
        author: "Emoji One",
        license: "CC-BY-4.0",
        url: "https://github.com/EmojiTwo/emojitwo",
    },
    Designer {
        name: "emojione-monotone",
        package: iconify("@iconify-json/emojione-monotone", "1.2.1", "sha512-cZSNcPsuiAD6HCzCh/2dYKGh3pNI0jJlxBxQWfC33cQsPtqYZqulGBvlkThXYNvDl8VxgVHT9u+izyX/yeEIkA=="),
        artwork: Artwork::Iconify,
        role: Role::Benchmark,
        author: "Emoji One",
        license: "CC-BY-4.0",
        url: "https://github.com/EmojiTwo/emojitwo",
    },
    Designer {
        name: "streamline-emojis",
        package: iconify("@iconify-json/streamline-emojis", "1.2.4", "sha512-iNr9T9XuZVTyQPJO8ZlLxBzPkpi7qMl+z1l0C31vpEMqhPMelth3n7CeWQYtixdetDPdI81yeG4ROqjWpYJE6A=="),
        artwork: Artwork::Iconify,
        role: Role::Benchmark,
        author: "Streamline",
        license: "CC-BY-4.0",
        url: "https://github.com/webalys-hq/streamline-vectors",
    },
];

/// The designer named `name`.
pub fn designer(name: &str) -> Option<&'static Designer> {
    DESIGNERS.iter().find(|d| d.name == name)
}

/// The designers of a role, in table order.
pub fn designers(role: Role) -> Vec<&'static Designer> {
    DESIGNERS.iter().filter(|d| d.role == role).collect()
}
