"""Starts ministack (the pinned emulator) with one gap bridged, for .ci/deployed's IAM-enforced run.

The gap: under AUTH=true ministack authorizes an SQS batch operation as an IAM action of its own name
(`sqs:SendMessageBatch`), while AWS authorizes SendMessageBatch, DeleteMessageBatch and
ChangeMessageVisibilityBatch with the action of the single operation (`sqs:SendMessage`, ...; the
batch names are not IAM actions). Without this, a role that AWS lets send batches is refused here, and
granting the batch names would put actions AWS does not have in the template. Everything else is
ministack as released.
"""

import ministack.core.iam_actions as iam_actions

BATCH_TO_SINGLE = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}
_extract = iam_actions.extract_iam_action


def extract_iam_action(*args, **kwargs):
    action = _extract(*args, **kwargs)
    return BATCH_TO_SINGLE.get(action, action)


# ministack imports it from the module at each request, so replacing the module's attribute suffices.
iam_actions.extract_iam_action = extract_iam_action

from ministack.app import main  # noqa: E402

main()
