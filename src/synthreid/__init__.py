"""synthreid: artificial training data for person re-identification.

Heavy imports (bpy, anny, torch) stay inside the functions that need them, so importing the
package and `synthreid --help` are instant.
"""

__version__ = "0.1.0"
