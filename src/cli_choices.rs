//! The choice flags of the `ssvae` command line as clap [`ValueEnum`](clap::ValueEnum)s
//! (feature `cli`): `--model`, `--arch` and `--dataset` list their possible values in `--help`
//! and refuse anything else as the command line is parsed, with the list. The spellings are
//! the enums' own `as_str`, over their `ALL`, so each name is written once.

/// `impl clap::ValueEnum` for enums with an `ALL` array and an `as_str` spelling.
macro_rules! value_enum_by_name {
    ($($t:ty),*) => {$(
        impl clap::ValueEnum for $t {
            fn value_variants<'a>() -> &'a [Self] {
                &<$t>::ALL
            }
            fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                Some(clap::builder::PossibleValue::new(self.as_str()))
            }
        }
    )*};
}

value_enum_by_name!(
    crate::models::ModelKind,
    crate::models::Arch,
    crate::data::DatasetName
);
