//! PLACEHOLDER — CoDel control law shared by FQ-CoDel (owner: qdisc helper).
