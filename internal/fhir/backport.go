package fhir

// Canonical URLs and codes of the Subscriptions R5 Backport IG (STU 1.1) and
// Herald's own extensions.
const (
	BackportBase = "http://hl7.org/fhir/uv/subscriptions-backport"

	ExtFilterCriteria  = BackportBase + "/StructureDefinition/backport-filter-criteria"
	ExtPayloadContent  = BackportBase + "/StructureDefinition/backport-payload-content"
	ExtHeartbeatPeriod = BackportBase + "/StructureDefinition/backport-heartbeat-period"
	ExtTimeout         = BackportBase + "/StructureDefinition/backport-timeout"
	ExtMaxCount        = BackportBase + "/StructureDefinition/backport-max-count"
	ExtChannelType     = BackportBase + "/StructureDefinition/backport-channel-type"
	ExtTopicCanonical  = BackportBase + "/StructureDefinition/capabilitystatement-subscriptiontopic-canonical"

	ProfileSubscription         = BackportBase + "/StructureDefinition/backport-subscription"
	ProfileNotificationR4       = BackportBase + "/StructureDefinition/backport-subscription-notification-r4"
	ProfileStatusR4             = BackportBase + "/StructureDefinition/backport-subscription-status-r4"
	CapabilityServerR4          = BackportBase + "/CapabilityStatement/backport-subscription-server-r4"
	OperationSubscriptionStatus = BackportBase + "/OperationDefinition/backport-subscription-status"
	OperationSubscriptionEvents = BackportBase + "/OperationDefinition/backport-subscription-events"

	// OperationSubscriptionAttempts is Herald's $attempts: the owner's view
	// of the delivery attempt log (README, "HTTP surface").
	OperationSubscriptionAttempts = "https://herald.dev/fhir/OperationDefinition/Subscription-attempts"

	// ExtSigningSecret is Herald's write-only signing secret on Subscription.channel.
	ExtSigningSecret = "https://herald.dev/fhir/StructureDefinition/signing-secret"
)

// Payload content codes (backport-content-code-system).
const (
	ContentEmpty        = "empty"
	ContentIDOnly       = "id-only"
	ContentFullResource = "full-resource"
)

// Subscription statuses (R4 subscription-status).
const (
	StatusRequested = "requested"
	StatusActive    = "active"
	StatusError     = "error"
	StatusOff       = "off"
)
