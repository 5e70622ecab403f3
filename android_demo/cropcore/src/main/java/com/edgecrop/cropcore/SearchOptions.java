package com.edgecrop.cropcore;

/** How to choose crops: the same options, defaults and rules as edgecrop.search.SearchOptions. */
public final class SearchOptions {
    public Policy policy = Policy.SALIENCY;
    public double minScale = 1.0;
    public int scaleSteps = 4;
    public double areaCost = 0.0;
    public int topK = 1;
    public double nmsIou = 0.5;
    public Boost[] boosts = new Boost[0];

    public SearchOptions validate() {
        if (!(minScale > 0 && minScale <= 1)) throw new IllegalArgumentException("minScale must be in (0, 1]");
        if (scaleSteps < 1 || scaleSteps > 64) throw new IllegalArgumentException("scaleSteps must be 1..64");
        if (!(areaCost >= 0 && areaCost <= 1e6)) throw new IllegalArgumentException("areaCost must be in [0, 1e6]");
        if (topK < 1 || topK > 64) throw new IllegalArgumentException("topK must be 1..64");
        if (!(nmsIou > 0 && nmsIou <= 1)) throw new IllegalArgumentException("nmsIou must be in (0, 1]");
        for (Boost b : boosts) b.validate();
        if (policy != Policy.SALIENCY && (minScale != 1.0 || areaCost != 0.0 || topK != 1))
            throw new IllegalArgumentException("minScale, areaCost and topK apply to the saliency policy only");
        if (policy == Policy.CENTRE && boosts.length > 0)
            throw new IllegalArgumentException("the centre policy ignores the map, so a focus cannot steer it");
        return this;
    }
}
