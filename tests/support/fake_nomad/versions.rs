//! The one list of Nomad versions there are fixtures for
//! (`tests/fixtures/nomad-<v>/`). The fake (`VERSIONS`), the per-version
//! end-to-end tests (`for_each_nomad_version!`) and the fixture mapping
//! tests are all driven by it: adding a version is one line below (plus its
//! fixture folder).

/// Expands a callback once per fixture version, oldest first.
///
/// - `for_each_version!(cb)` expands to `cb!(nomad_0_5_6, "0.5.6");`, one
///   such line per version (the identifier names the version's test);
/// - `for_each_version!(cb, tokens…)` passes the tokens first:
///   `cb!(tokens… nomad_0_5_6, "0.5.6");`;
/// - `for_each_version!(@strs)` is the list as a `&[&str]`.
///
/// The callback may be a path such as `$crate::some_macro`.
#[macro_export]
macro_rules! for_each_version {
    // The list. One line per version: (test name, version).
    (@__list $then:ident $ctx:tt) => {
        $crate::for_each_version! { @$then $ctx
            (nomad_0_5_6 "0.5.6")
            (nomad_0_8_7 "0.8.7")
            (nomad_1_4_0 "1.4.0")
            (nomad_1_8_0 "1.8.0")
            (nomad_1_10_5 "1.10.5")
            (nomad_1_11_0 "1.11.0")
            (nomad_2_0_5 "2.0.5")
        }
    };
    (@__each $ctx:tt $(($name:ident $v:literal))*) => {
        $( $crate::for_each_version! { @__call $ctx $name $v } )*
    };
    (@__call [($($cb:tt)+) $($arg:tt)*] $name:ident $v:literal) => {
        $($cb)+! { $($arg)* $name, $v }
    };
    (@__strs $ctx:tt $(($name:ident $v:literal))*) => {
        &[$($v),*]
    };
    (@strs) => {
        $crate::for_each_version! { @__list __strs [] }
    };
    ($($cb:ident)::+ $(, $($arg:tt)*)?) => {
        $crate::for_each_version! { @__list __each [($($cb)::+) $($($arg)*)?] }
    };
}
