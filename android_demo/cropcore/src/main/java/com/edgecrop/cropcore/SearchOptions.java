package com.edgecrop.cropcore;

/** How to choose crops: the same options and defaults as edgecrop.SearchOptions. */
public final class SearchOptions {
    public String policy = "saliency"; // saliency | twitter | center
    public double minScale = 1.0;
    public int scaleSteps = 4;
    public double areaCost = 0.0;
    public int topK = 1;
    public double nmsIou = 0.5;
    public Boost[] boosts = new Boost[0];

    public SearchOptions validate() {
        if (!policy.equals("saliency") && !policy.equals("twitter") && !policy.equals("center"))
            throw new IllegalArgumentException("unknown policy " + policy);
        if (!(minScale > 0 && minScale <= 1)) throw new IllegalArgumentException("minScale must be in (0, 1]");
        if (topK < 1) throw new IllegalArgumentException("topK must be at least 1");
        return this;
    }
}
