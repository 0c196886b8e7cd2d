//! Names that change how a program loads or runs code: one class, defined here, by
//! families, matched without regard to case. A secret by such a name is as strong as
//! every value of its scope — `PYTHONWARNINGS` with `BROWSER`, or `GIT_CONFIG_*` with
//! `core.fsmonitor`, make the app's own interpreter run the writer's command, with the
//! app's environment — so only a token that could reveal the whole scope may write one
//! ([`super::Secrets::write`]), and `macvault run` and `secrets export` pass one on only
//! when told to (`--allow NAME`). A list of names always misses one; families miss
//! fewer, and the write rule covers what they miss. README ("Threat model").

/// Prefixes of families of such names (compared upper-cased).
pub const FAMILIES: &[&str] = &[
    "LD_",
    "DYLD_",
    "PYTHON",
    "NODE_",
    "NPM_CONFIG_",
    "PERL",
    "RUBY",
    "GEM_",
    "BUNDLE_",
    "DOTNET_",
    "COMPLUS_",
    "CORECLR_",
    "GIT_",
    "LUA_",
    "OPENSSL_",
    "SSL_CERT_",
    "MALLOC_",
    "BASH_FUNC_",
];

/// Single such names (compared upper-cased).
pub const NAMES: &[&str] = &[
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "GCONV_PATH",
    "LOCPATH",
    "GLIBC_TUNABLES",
    "BASH_ENV",
    "ENV",
    "ZDOTDIR",
    "BASHOPTS",
    "SHELLOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "IFS",
    "CDPATH",
    "PATH",
    "HOME",
    "SHELL",
    "TMPDIR",
    "BROWSER",
    "PAGER",
    "MANPAGER",
    "EDITOR",
    "VISUAL",
    "LESSOPEN",
    "LESSCLOSE",
    "SSH_ASKPASS",
    "SUDO_ASKPASS",
    "XDG_CONFIG_HOME",
    "XDG_CONFIG_DIRS",
    "PHPRC",
    "PHP_INI_SCAN_DIR",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "RES_OPTIONS",
];

/// Data-only names that a family would otherwise catch: they select a mode or carry a
/// label, and load nothing.
pub const DATA_ONLY: &[&str] = &[
    "NODE_ENV",
    "PYTHONUNBUFFERED",
    "PYTHONHASHSEED",
    "PYTHONDONTWRITEBYTECODE",
    "DOTNET_ENVIRONMENT",
    "GIT_SHA",
    "GIT_COMMIT",
    "GIT_BRANCH",
    "GIT_TAG",
    "BUNDLE_WITHOUT",
];

/// Whether a variable `name` changes how programs load or run code (any case).
pub fn loads_code(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let upper = upper.as_str();
    if DATA_ONLY.contains(&upper) {
        return false;
    }
    NAMES.contains(&upper) || FAMILIES.iter().any(|f| upper.starts_with(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_and_name_in_any_case_and_the_exceptions() {
        // A member of each family, and each single name, in upper and lower case.
        let mut members: Vec<String> = FAMILIES.iter().map(|f| format!("{f}X")).collect();
        members.extend(NAMES.iter().map(|n| (*n).to_owned()));
        for name in &members {
            assert!(loads_code(name), "{name}");
            assert!(
                loads_code(&name.to_ascii_lowercase()),
                "{name} in lower case"
            );
        }
        // The cases that were exploited (issue: a deploy token's way to the values).
        for name in [
            "PYTHONWARNINGS",
            "BROWSER",
            "GIT_CONFIG_COUNT",
            "GIT_CONFIG_KEY_0",
            "GIT_CONFIG_VALUE_0",
            "LUA_INIT",
            "PAGER",
            "OPENSSL_CONF",
            "GIT_ASKPASS",
            "GIT_EXTERNAL_DIFF",
            "HOME",
            "PYTHONBREAKPOINT",
            "PYTHONUSERBASE",
            "DOTNET_STARTUP_HOOKS",
            "PERL5DB",
            "npm_config_script_shell",
            "path",
            "ld_preload",
            "NODE_OPTIONS",
            "BASH_FUNC_ls%%",
        ] {
            assert!(loads_code(name), "{name}");
        }
        // Data only, in any case; and plain names.
        for name in DATA_ONLY {
            assert!(!loads_code(name), "{name}");
            assert!(
                !loads_code(&name.to_ascii_lowercase()),
                "{name} in lower case"
            );
        }
        for name in [
            "DB_URL",
            "API_KEY",
            "NODE",
            "GITHUB_TOKEN",
            "PATHS",
            "HOMEPAGE",
            "SHELLY",
        ] {
            assert!(!loads_code(name), "{name}");
        }
    }
}
