//! The queues, a leaf of the ledger's vocabulary: the database layer and the settings name
//! them without depending on the rest of `jobs`.

/// The queues, each with its own worker pool. Adding a job kind may add a queue here: a
/// variant is all it takes (its name, the list of queues, the API's schema and the README's
/// table follow; a test asks for its workers in `deploy/k8s/tend.yaml`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::VariantArray,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::Display,
)]
#[strum(serialize_all = "lowercase")]
pub enum Queue {
    /// Outgoing mail: many, quick, must not wait behind slow work.
    Email,
    /// Scheduled housekeeping.
    Maintenance,
    /// Session audio to transcripts: slow, paid, long-running.
    Transcription,
    /// Transcripts to notes and mission drafts: paid chat calls, must not wait behind
    /// hour-long transcriptions.
    Extraction,
    /// Documents people wait for: PDF/DOCX exports and personal data exports (CPU and
    /// store bound), kept apart from housekeeping and paid provider calls.
    Documents,
}

impl Queue {
    /// Every queue, for workers and the relay (an array, copied from strum's list of
    /// variants, so it iterates by value).
    pub const ALL: [Queue; Self::COUNT] = {
        let variants = <Queue as strum::VariantArray>::VARIANTS;
        let mut all = [Queue::Email; Self::COUNT];
        let mut i = 0;
        while i < Self::COUNT {
            all[i] = variants[i];
            i += 1;
        }
        all
    };
    /// How many queues there are.
    pub const COUNT: usize = <Queue as strum::VariantArray>::VARIANTS.len();

    /// The queue's name in the ledger and (namespaced) in the transport.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Looks a queue up by name.
    pub fn parse(name: &str) -> Option<Self> {
        name.parse().ok()
    }

    /// Most jobs one delivery on the transport carries. Short jobs travel in batches, so a
    /// burst costs one transport message, one claim and one outcome write per batch instead of
    /// per job; slow jobs travel alone (the default), so one replica never holds work another
    /// could start.
    pub fn delivery_batch(self) -> usize {
        match self {
            Queue::Email => 32,
            _ => 1,
        }
    }
}
