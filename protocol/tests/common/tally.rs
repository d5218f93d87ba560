//! Tallies: what the inputs of a stable twin of a fuzz target exercised, summed over the
//! inputs so that the test can show it did something.

/// A `#[derive(Debug, Default, Clone, Copy)]` struct of public `usize` counters, named
/// with their doc comments, and `+=` adding two of them counter by counter (so that no
/// counter can be left out of the sum).
macro_rules! tally {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$counter_meta:meta])* $counter:ident,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default, Clone, Copy)]
        pub struct $name {
            $($(#[$counter_meta])* pub $counter: usize,)*
        }

        impl std::ops::AddAssign for $name {
            fn add_assign(&mut self, other: $name) {
                $(self.$counter += other.$counter;)*
            }
        }
    };
}

pub(crate) use tally;
