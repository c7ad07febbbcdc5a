"""Documentation of estate_desired_config; the work is done by the action plugin of that name."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: estate_desired_config
short_description: Set an Estate device's desired configuration through the control plane
description:
  - For devices without Python (in-cell phones, most tablets) and for settings the agent
    applies itself. The control plane stores the document as the device's next version, signs
    it and publishes it on the device's retained config topic; the agent checks it, applies
    what it understands and reports the version applied or its reason for refusing.
  - Runs on the controller through the job's gateway; nothing is executed on the device.
  - Setting the document the device already has makes no new version and reports no change.
options:
  doc:
    description:
      - The whole desired document, for example C(health_interval_s), C(apps_allowed),
        C(kiosk) and C(wifi).
    type: dict
    required: true
  merge:
    description:
      - Lay the sections given over the device's current desired document, instead of
        replacing the whole document. Done by the control plane, so concurrent jobs see the
        latest document.
    type: bool
    default: false
  wait:
    description: Wait until the device reports the version applied (or refused).
    type: bool
    default: true
  timeout:
    description: Seconds to wait for the device's report.
    type: int
    default: 120
author: Estate
"""

EXAMPLES = r"""
- name: Allow only the approved apps
  estate_desired_config:
    doc:
      apps_allowed: [uk.gov.justice.phone, uk.gov.justice.content]
      kiosk: {enabled: true, app: uk.gov.justice.content}
"""

RETURN = r"""
version:
  description: The desired version the device now has to apply.
  type: int
  returned: always
status:
  description: applied, or published when not waiting.
  type: str
  returned: always
"""


def main() -> None:
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    module.fail_json(msg="estate_desired_config runs on the controller; its action plugin failed")


if __name__ == "__main__":
    main()
