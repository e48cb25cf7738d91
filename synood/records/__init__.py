"""Records: the run database and the detector and training-state files that pipelines write and resume from."""
