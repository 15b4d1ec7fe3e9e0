# The confidential-space reference plugin's strict rules, in Rego: the seed's role
# (seed.rego) plus an up-to-date TDX TCB and memory monitoring switched off. The golden cases
# (tests/fixtures/golden/) run it beside the Rust plugin.
#
# input: the verified token's claims.  data.workload: the allowed values (seed-data.json).
# Each requirement is a positive rule; `allow` is all of them together, and every requirement
# that does not hold adds a `deny` message saying what was required and what the token carries.
# A missing claim makes its positive rule undefined, so `not` turns it into a deny: the policy
# fails closed on claims it does not find.
package attestgate

default allow := false

allow if {
	production
	stable_support
	allowed_hardware
	confidential_space
	allowed_image
	allowed_project
	allowed_service_account
	recent_enough
	tcb_up_to_date
	memory_unmonitored
}

# A production image: debugging was never possible on this VM.
production if input.dbgstat == "disabled-since-boot"

# Still in Google's support window (debug images carry no support attributes at all).
stable_support if "STABLE" in input.submods.confidential_space.support_attributes

allowed_hardware if input.hwmodel in data.workload.hwmodels

confidential_space if input.swname == "CONFIDENTIAL_SPACE"

allowed_image if input.submods.container.image_digest in data.workload.image_digests

allowed_project if input.submods.gce.project_id in data.workload.projects

allowed_service_account if {
	some account in input.google_service_accounts
	account in data.workload.service_accounts
}

# Some swversion (all digits) at least the minimum.
recent_enough if {
	some version in input.swversion
	is_string(version)
	version != ""
	trim_left(version, "0123456789") == ""
	to_number(version) >= data.workload.min_swversion
}

# What the token carries at `path` (a list of keys), as JSON for a message; "missing" when it
# carries nothing there.
found(path) := json.marshal(value) if {
	value := object.get(input, path, null)
	value != null
} else := "missing"

deny contains msg if {
	not production
	msg := sprintf("dbgstat is %s; a production image (dbgstat \"disabled-since-boot\") is required", [found(["dbgstat"])])
}

deny contains msg if {
	not stable_support
	msg := sprintf("support_attributes are %s; \"STABLE\" is required", [found(["submods", "confidential_space", "support_attributes"])])
}

deny contains msg if {
	not allowed_hardware
	msg := sprintf("hwmodel is %s; allowed: %s", [found(["hwmodel"]), json.marshal(data.workload.hwmodels)])
}

deny contains msg if {
	not confidential_space
	msg := sprintf("swname is %s; \"CONFIDENTIAL_SPACE\" is required", [found(["swname"])])
}

deny contains msg if {
	not allowed_image
	msg := sprintf("image_digest is %s; allowed: %s", [found(["submods", "container", "image_digest"]), json.marshal(data.workload.image_digests)])
}

deny contains msg if {
	not allowed_project
	msg := sprintf("project_id is %s; allowed: %s", [found(["submods", "gce", "project_id"]), json.marshal(data.workload.projects)])
}

deny contains msg if {
	not allowed_service_account
	msg := sprintf("google_service_accounts are %s; one of %s is required", [found(["google_service_accounts"]), json.marshal(data.workload.service_accounts)])
}

deny contains msg if {
	not recent_enough
	msg := sprintf("swversion is %s; at least %d is required", [found(["swversion"]), data.workload.min_swversion])
}

# On TDX hardware the attester TCB must be up to date; other hardware passes.
tcb_up_to_date if input.hwmodel != "GCP_INTEL_TDX"

tcb_up_to_date if input.tdx.gcp_attester_tcb_status == "UpToDate"

memory_unmonitored if input.submods.confidential_space.monitoring_enabled.memory == false

deny contains msg if {
	not tcb_up_to_date
	msg := sprintf("TDX TCB status is %s; \"UpToDate\" is required", [found(["tdx", "gcp_attester_tcb_status"])])
}

deny contains msg if {
	not memory_unmonitored
	msg := sprintf("memory monitoring is %s; it must be disabled", [found(["submods", "confidential_space", "monitoring_enabled", "memory"])])
}
