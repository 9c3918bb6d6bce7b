"""What the pages share (no engine logic here; each module one concern):

sidebar.py (setup kept in the URL), dataset_source.py (the active dataset), forms.py (fields,
bounds, remembered values), approach_page.py, job_view.py (live panel, results), curves.py,
run_labels.py / run_manager.py (naming and deleting runs), resources.py (cached server
resources), plus access, uploads, distribution, tensorboard_logs, export_panel and gradcam.
"""
