//! The process-wide rustls crypto provider. More than one provider is compiled in (kube-rs,
//! reqwest and the lab's server each enable rustls features), and rustls then panics at the
//! first handshake unless one is installed as the default. [`ensure_crypto_provider`] makes
//! ring that default; `resil::run` calls it first thing, and the entry points that tests use
//! without `run` (`Lab::start`, `cluster::connect`) call it too. Used by the lab and the
//! toolkit alike (it knows neither).

/// Makes ring the process-wide rustls provider. Idempotent: the `Err` a second call gets
/// only says a provider is installed already, so it is ignored on purpose.
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_is_installed_and_a_second_call_is_harmless() {
        ensure_crypto_provider();
        ensure_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
