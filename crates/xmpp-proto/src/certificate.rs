//! Judgement of a server-to-server peer's certificate chain (RFC 6120 §13.7.2, XEP-0178, RFC 6125).
//!
//! The machinery lives in `sixgate-pki`, shared with the SIP side; these re-exports keep the paths the s2s code
//! and the app have always used. [`TrustStore::judge`] applies the XMPP identity rules
//! ([`CertificateIdentities`]); the s2s negotiation offers or attempts SASL EXTERNAL only on
//! [`CertificateVerdict::Valid`].

pub use sixgate_pki::{
    CertificateIdentities, CertificateProblem, CertificateVerdict, TrustStore, TrustStoreError,
};
