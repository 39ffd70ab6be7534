"""Qt services (QtCore/QtNetwork only, no widgets): server instances, the instance manager, the sampler."""
