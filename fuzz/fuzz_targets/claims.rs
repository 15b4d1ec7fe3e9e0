#![no_main]
//! The host's claims model and the plugin SDK's read the same verified payload alike.

use attestgate_plugin_sdk::claims::Claims as SdkClaims;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((host, payload_json)) = attestgate_fuzz::claims(data) else {
        return;
    };
    let sdk =
        SdkClaims::parse(&payload_json).expect("the SDK reads every payload the host accepts");
    assert_eq!(host.issuer.as_deref(), sdk.issuer());
    assert_eq!(host.subject.as_deref(), sdk.subject());
    assert_eq!(host.audiences, sdk.audiences());
    assert_eq!(host.nonces, sdk.nonces());
    assert_eq!(host.hwmodel.as_deref(), sdk.hwmodel());
    assert_eq!(host.swname.as_deref(), sdk.swname());
    assert_eq!(host.swversion, sdk.swversion());
    assert_eq!(host.dbgstat.as_deref(), sdk.dbgstat());
    assert_eq!(host.is_production(), sdk.is_production());
});
