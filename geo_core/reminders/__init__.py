"""Customer care reminders (客户关怀提醒) and the custom events set while profiling."""
