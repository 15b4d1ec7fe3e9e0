# Trustee KBS's resource-policy shape, for Confidential Space claims.
#
# KBS users will recognise it: `package policy`, `default allow = false`, and `allow` rules over
# `input`, in pre-1.0 Rego syntax. Configure the plugin with "package": "policy" and
# "rego_version": "v0". The differences from KBS:
# - input is the Confidential Space token's claims (Google's verifier has already appraised the
#   hardware evidence), not an attestation-service token's: `input["hwmodel"]`, not
#   `input["tee"]` or an EAR trust vector;
# - data is the plugin configuration's `data` (reference values here), not the requested
#   resource's path: attestgate decides per collaborator, and the Vault role decides which
#   secrets that opens;
# - a `deny` set can say why a token was refused; KBS has no equivalent.
package policy

default allow = false

allow {
	input["swname"] == "CONFIDENTIAL_SPACE"
	input["dbgstat"] == "disabled-since-boot"
	input["submods"]["confidential_space"]["support_attributes"][_] == "STABLE"
	input["hwmodel"] == data["reference"]["hwmodels"][_]
	input["submods"]["container"]["image_digest"] == data["reference"]["image_digests"][_]
	input["submods"]["gce"]["project_id"] == data["reference"]["projects"][_]
}

deny[msg] {
	not production
	msg := "a production image is required (dbgstat must be \"disabled-since-boot\")"
}

deny[msg] {
	not trusted_image
	msg := sprintf("image %v is not one of the reference image digests", [object.get(input, ["submods", "container", "image_digest"], "(missing)")])
}

production {
	input["dbgstat"] == "disabled-since-boot"
}

trusted_image {
	input["submods"]["container"]["image_digest"] == data["reference"]["image_digests"][_]
}
